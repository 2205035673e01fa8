#!/usr/bin/env python3
"""Rebuild the trainable ``.nemo`` of an exported CTC model from its export folder.

    .venv-nemo/bin/python scripts/recover_nemo.py models/embedded --out /work/runs/shipped.nemo

Checkpoints stay outside git, and a fresh machine has none; the export folder does not lose
anything training needs. Its fp32 graph holds every trained tensor (named ones under their
state-dict names; each linear layer's weight transposed, in front of a MatMul node named after
its module), and the manifest holds the vocabulary. The SentencePiece BPE tokenizer is rebuilt
from that vocabulary: BPE encoding merges by piece score only, and the trainer scores pieces
in vocabulary order. The original normaliser is not exported; training text (normalised to the
model's own character set, single spaces) is cut into the same pieces either way. The network is built from ``--config`` (the architecture the model was
trained with), loaded, saved, and exported again: it is accepted only if every fp32 graph of
that export is byte-identical to the folder's (the manifest's ``onnx_sha256``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_embedded import SPM_OPTIONS, build_model, write_vocab  # noqa: E402


def graph_tensors(onnx_path: Path) -> dict[str, np.ndarray]:
    """State-dict name -> value for every trained tensor of an exported encoder+CTC graph."""
    import onnx
    from onnx import numpy_helper

    # External data is read here, not by onnx.load: onnx refuses a weights file with several
    # hard links, and the model repository builder hard-links the shipped one.
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            where = {entry.key: entry.value for entry in init.external_data}
            with (onnx_path.parent / where["location"]).open("rb") as blob:
                blob.seek(int(where.get("offset", 0)))
                init.raw_data = blob.read(int(where.get("length", -1)))
            init.data_location = onnx.TensorProto.DEFAULT
            del init.external_data[:]
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        # The exporter keeps one of several equal tensors (fresh layer norms, say) and names the
        # others as Identity nodes of it.
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    tensors = {name: value for name, value in values.items() if name.startswith(("encoder.", "decoder."))}
    for node in graph.node:
        # torch.onnx names a linear layer's node after its module path, relative to the encoder.
        if node.op_type != "MatMul" or not node.name.endswith("/MatMul"):
            continue
        weight = next((x for x in node.input if x in values and x not in tensors), None)
        if weight is None:
            continue
        module = node.name.strip("/").removesuffix("/MatMul").replace("/", ".")
        tensors[f"encoder.{module}.weight"] = np.ascontiguousarray(values[weight].T)
    return tensors


def write_tokenizer(vocab: list[str], out_dir: Path) -> None:
    """A SentencePiece BPE model whose pieces are ``vocab`` (id 0 = <unk>, merge order = id)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    if not vocab or vocab[0] != "<unk>":
        raise SystemExit("expected a SentencePiece vocabulary with <unk> at id 0")
    # A template trained with the options train_embedded.py uses gives the normaliser and
    # trainer specs; its pieces are then replaced.
    chars = sorted({c for piece in vocab[1:] for c in piece.replace("\u2581", " ")} - {" "})
    template = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(chars)] * 4), model_writer=template, vocab_size=len(chars) + 2,
        hard_vocab_limit=False, **SPM_OPTIONS,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(template.getvalue())
    del proto.pieces[:]
    unk = proto.pieces.add()
    unk.piece, unk.score, unk.type = "<unk>", 0.0, pb.ModelProto.SentencePiece.UNKNOWN
    for i, piece in enumerate(vocab[1:]):
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, -float(i), pb.ModelProto.SentencePiece.NORMAL
    proto.trainer_spec.vocab_size = len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(proto.SerializeToString())
    write_vocab(out_dir, vocab)
    rebuilt = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    if [rebuilt.id_to_piece(i) for i in range(rebuilt.get_piece_size())] != vocab:
        raise SystemExit("rebuilt tokenizer does not reproduce the vocabulary")


def recover(export_dir: Path, config: Path, out: Path) -> list[str]:
    """Write ``out``; return the fp32 graphs its export reproduces (all of them, or SystemExit)."""
    import torch

    import export_nemo

    manifest = json.loads((export_dir / "manifest.json").read_text())
    if manifest.get("heads") != ["ctc"] or manifest.get("tokenizer") != "bpe":
        raise SystemExit("only CTC models with a BPE tokenizer can be recovered")
    profiles = list(manifest["profiles"].values())
    profile = next((p for p in profiles if p.get("default")), profiles[0])
    tensors = graph_tensors(export_dir / profile["onnx"]["ctc"])
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(manifest["vocabulary"], Path(tmp) / "tokenizer")
        model = build_model(config, Path(tmp) / "tokenizer")
        state = model.state_dict()
        trained = {n for n, _ in model.named_parameters()}
        missing = sorted(trained - tensors.keys())
        if missing:
            raise SystemExit(f"the graph lacks {len(missing)} trained tensors, e.g. {missing[:3]}")
        with torch.no_grad():
            for name in trained:
                value = torch.from_numpy(tensors[name])
                if tuple(value.shape) != tuple(state[name].shape):
                    raise SystemExit(f"{name}: graph shape {tuple(value.shape)}, config {tuple(state[name].shape)}")
                state[name].copy_(value)
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(out))
        # Proof by round trip: the recovered model must export to the very same fp32 graphs.
        export_nemo.main([str(out), "--out", str(Path(tmp) / "export"), "--name", manifest["model"]])
        again = json.loads((Path(tmp) / "export" / "manifest.json").read_text())["profiles"]
    checked = []
    for name, profile in manifest["profiles"].items():
        for key, graph in profile["onnx"].items():
            if key.endswith("_int8"):
                continue
            if again[name]["onnx_sha256"][graph] != profile["onnx_sha256"][graph]:
                out.unlink()
                raise SystemExit(f"{graph}: the recovered model exports a different graph; "
                                 "--config is not the exported architecture")
            checked.append(graph)
    return checked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir", type=Path, help="folder written by export_nemo.py (manifest.json + graphs)")
    ap.add_argument("--config", type=Path, default=HERE / "embedded_model.yaml",
                    help="the model's architecture: a training config or a .nemo's model_config.yaml")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    graphs = recover(args.export_dir, args.config, args.out)
    print(f"wrote {args.out}: it exports to the same {', '.join(graphs)}")


if __name__ == "__main__":
    main()
