"""Export a NeMo FastConformer ``.nemo`` to the files the serving path needs.

Writes into ``--out``:

* ``encoder-la<N>.onnx`` for every look-ahead N of the model's ``att_context_size`` list:
  the cache-aware encoder plus CTC head (``logprobs``), exported by NeMo itself with
  ``cache_support`` (``--int8`` adds dynamically quantised ``encoder-la<N>.int8.onnx``).
  Models with a transducer (RNNT or hybrid RNNT+CTC) also get ``encoder-la<N>.rnnt.onnx``, the
  same encoder without a head (``outputs`` [B, d_model, T]), and one ``decoder_joint-rnnt.onnx``
  (prediction network + joint, shared by every look-ahead). All encoder graphs of a model keep
  their weights in one external file (``encoder.weights``), each distinct tensor stored once.
* ``features.npz``: the exact mel filterbank and window of the model's preprocessor and its
  scalar settings, so that the Triton feature extractor reproduces the preprocessor in numpy.
* ``manifest.json``: everything model-specific the repository builder and the frontend need
  (vocabulary, blank, frame shift, per-profile chunk sizes and cache shapes, uuid...).

Models that are not cache-aware (full-context attention, non-causal convolutions,
per-utterance normalisation...) get ``"mode": "buffered"``: ``encoder-offline.onnx`` (and
``encoder-offline.rnnt.onnx``) is NeMo's offline encoder export with a dynamic time axis, and the
one profile ``la<N>`` describes the window the service runs it on (``--buffer-chunk-s``,
``--buffer-left-s``, ``--buffer-right-s``; see ``scripts/buffered_export.py``).

``manifest.json`` lists the heads (``"heads": ["ctc", "rnnt"]`` for a hybrid) and, for RNNT,
the prediction network's shapes and NeMo's greedy ``max_symbols`` (key ``rnnt``).

Run with the NeMo environment::

    .venv-nemo/bin/python scripts/export_nemo.py MODEL.nemo --out models/embedded
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, scripts/ is on sys.path but not the repository root that ``scripts.*`` needs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import buffered_export as buffered  # noqa: E402

LOG = logging.getLogger("export_nemo")

MANIFEST_SCHEMA = 1
# Namespace of the model uuids: uuid5(namespace, sha256 of the weights).
UUID_NAMESPACE = uuid.UUID("5b0c6f1e-8d4a-4a1e-9c65-2f1d7e3a9b10")
# Value of the pre-encode cache before the first chunk: the exported graph and NeMo's
# ``pad_and_drop_preencoded`` streaming both use zeros, which is also what the causal
# subsampling convolutions see left of the first frame in offline (training) mode.
PRE_ENCODE_FILL = 0.0
# The transducer's prediction network + joint: one graph for every look-ahead.
DECODER_JOINT = "decoder_joint-rnnt.onnx"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the script."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help=".nemo file")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced files only)")
    p.add_argument("--name", default="embedded", help="model id, [a-z0-9]+ (ensemble asr_<name>_<profile>)")
    p.add_argument("--language", action="append", help="BCP-47 primary subtag; repeatable (default en)")
    p.add_argument("--display-name", help="human-readable name (default: <name> + architecture)")
    p.add_argument("--version", default="0", help="model version echoed in metadata")
    p.add_argument("--int8", action="store_true", help="also write dynamically quantised int8 encoders")
    p.add_argument("--check-chunks", type=int, default=3, help="chunks of ONNX-vs-NeMo check per profile")
    p.add_argument(
        "--buffer-chunk-s",
        type=float,
        default=buffered.DEFAULT_CHUNK_S,
        help="buffered models: seconds decoded per window (a multiple of the encoder frame shift)",
    )
    p.add_argument(
        "--buffer-left-s", type=float, default=buffered.DEFAULT_LEFT_S, help="buffered models: left context seconds"
    )
    p.add_argument(
        "--buffer-right-s",
        type=float,
        default=buffered.DEFAULT_RIGHT_S,
        help="buffered models: right context seconds (every result waits for it)",
    )
    return p.parse_args(argv)


# --------------------------------------------------------------------------- model facts


@dataclass(frozen=True)
class FeatureSettings:
    """Scalar settings of NeMo's ``FilterbankFeatures`` that the numpy extractor needs."""

    sample_rate: int
    n_mels: int
    n_fft: int
    hop_length: int
    win_length: int
    preemph: float
    log_guard: float
    log_guard_type: str
    mag_power: float
    pad_value: float
    pre_encode_fill: float
    # "none", or "per_feature" (NeMo normalises every band over the utterance; buffered serving
    # over each window).
    normalize: str


@dataclass(frozen=True)
class FeatureProblems:
    """Why the preprocessor cannot be served as it is."""

    streaming: list[str]  # needs the whole utterance: buffered serving only
    unsupported: list[str]  # the serving extractor cannot reproduce it at all


def feature_settings(model: Any) -> tuple[FeatureSettings, np.ndarray, np.ndarray, FeatureProblems]:
    """Settings, filterbank [n_mels, n_fft//2+1] and window [win_length] of the preprocessor,
    and what keeps it from being served."""
    import torch

    fz = model.preprocessor.featurizer
    problems = FeatureProblems(streaming=[], unsupported=[])
    hashable = fz.normalize is None or isinstance(fz.normalize, (str, bool))
    normalize = buffered.WINDOW_NORMALIZATION.get(fz.normalize) if hashable else None
    if normalize is None:
        problems.unsupported.append(f"preprocessor normalize={fz.normalize!r}")
    elif normalize != "none":
        problems.streaming.append(f"preprocessor normalize={fz.normalize!r} needs the whole utterance")
    if fz.exact_pad:
        problems.unsupported.append("exact_pad=True (center=False STFT) is not implemented by the extractor")
    if fz.frame_splicing != 1:
        problems.unsupported.append(f"frame_splicing={fz.frame_splicing}")
    if not fz.log:
        problems.unsupported.append("log=False")
    if fz.window is None:
        problems.unsupported.append("window='none'")
    guard = fz.log_zero_guard_value_fn(torch.zeros(1, dtype=torch.float32))
    settings = FeatureSettings(
        sample_rate=int(fz.sample_rate),
        n_mels=int(fz.nfilt),
        n_fft=int(fz.n_fft),
        hop_length=int(fz.hop_length),
        win_length=int(fz.win_length),
        preemph=float(fz.preemph or 0.0),
        log_guard=float(guard),
        log_guard_type=str(fz.log_zero_guard_type),
        mag_power=float(fz.mag_power),
        pad_value=float(fz.pad_value),
        pre_encode_fill=PRE_ENCODE_FILL,
        normalize=normalize or "none",
    )
    fb = fz.fb.detach().cpu().numpy()[0].astype(np.float32)
    window = (
        fz.window.detach().cpu().numpy().astype(np.float32)
        if fz.window is not None
        else np.ones(settings.win_length, np.float32)
    )
    return settings, fb, window, problems


def ctc_module(model: Any) -> Any | None:
    """The CTC head (``ConvASRDecoder``) of a CTC or hybrid model, else None."""
    if hasattr(model, "ctc_decoder"):
        return model.ctc_decoder
    if hasattr(model.decoder, "decoder_layers"):
        return model.decoder
    return None


def model_heads(model: Any) -> list[str]:
    """Decoder heads of the model, CTC first: ``ctc``, ``rnnt`` (transducer) or both (hybrid)."""
    heads = ["ctc"] if ctc_module(model) is not None else []
    if hasattr(model, "joint"):
        heads.append("rnnt")
    if not heads:
        raise SystemExit(f"{type(model).__name__} has neither a CTC head nor a transducer")
    return heads


def vocabulary(model: Any) -> list[str]:
    """Token pieces (blank excluded, blank id = their count); a hybrid's two heads must agree."""
    heads = (ctc_module(model), getattr(model, "joint", None))
    vocabs = [list(head.vocabulary) for head in heads if head is not None]
    if any(v != vocabs[0] for v in vocabs):
        raise SystemExit("the CTC and RNNT heads have different vocabularies")
    return vocabs[0]


def select_head(model: Any, head: str) -> None:
    """Make ``model.export`` write ``head``'s graphs (only hybrids have a choice)."""
    if hasattr(model, "ctc_decoder"):
        model.set_export_config({"decoder_type": head})


def weights_digest(model: Any, vocab: list[str]) -> str:
    """sha256 over the vocabulary and every tensor of the state dict (in name order).

    The vocabulary is part of the identity: two models with equal (e.g. equally seeded)
    weights but different tokenizers must not share a uuid.
    """
    h = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def streaming_problems(encoder: Any) -> list[str]:
    """Reasons why the encoder is not cache-aware streamable (empty when it is)."""
    problems = []
    if type(encoder).__name__ != "ConformerEncoder":
        problems.append(f"encoder {type(encoder).__name__} is not a ConformerEncoder")
        return problems
    if encoder.att_context_style != "chunked_limited":
        problems.append(f"att_context_style={encoder.att_context_style!r}")
    if any(c[0] < 0 for c in encoder.att_context_size_all):
        problems.append("unlimited left attention context")
    if encoder.conv_context_size[1] != 0:
        problems.append(f"conv_context_size={encoder.conv_context_size} is not causal")
    if not hasattr(encoder.pre_encode, "get_streaming_cache_size"):
        problems.append("subsampling without streaming cache")
    return problems


def _second(value: Any) -> int:
    """NeMo streaming sizes are [first chunk, later chunks] lists or plain ints."""
    return int(value[1] if isinstance(value, (list, tuple)) else value)


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def profile_facts(model: Any, ctx: list[int], feats: FeatureSettings) -> dict[str, Any]:
    """Chunk geometry and cache shapes of one look-ahead (call after set_default_att_context_size)."""
    enc = model.encoder
    cfg = enc.streaming_cfg
    chunk_frames = _second(cfg.chunk_size)
    chunk_samples = chunk_frames * feats.hop_length
    lead_frames = chunk_frames - _first(cfg.chunk_size)
    frame_shift_s = enc.subsampling_factor * feats.hop_length / feats.sample_rate
    return {
        "att_context_size": [int(ctx[0]), int(ctx[1])],
        "lookahead_ms": round(int(ctx[1]) * frame_shift_s * 1000),
        "chunk_frames": chunk_frames,
        "pre_encode_cache_size": _second(cfg.pre_encode_cache_size),
        "drop_extra_pre_encoded": int(cfg.drop_extra_pre_encoded),
        "encoder_frames": int(cfg.valid_out_len),
        "chunk_samples": chunk_samples,
        # NeMo's first streaming chunk is shorter (chunk_size [first, later]): the service
        # starts each segment with that many fill frames so that encoder frames and attention
        # chunks line up with the offline forward (features/chunker.py).
        "lead_frames": lead_frames,
        # The mel window reaches win_length/2 past the centre of a chunk's last frame, which
        # sits one hop before the chunk's end: the first request carries that extra. (It also
        # carries lead_frames frames more than the first chunk needs, which wait for the next
        # chunk: every request stays one whole chunk, at lead_frames * 10 ms more latency.)
        "first_chunk_samples": chunk_samples - feats.hop_length + feats.win_length // 2,
        "cache_last_channel": [len(enc.layers), int(cfg.last_channel_cache_size), int(enc.d_model)],
        "cache_last_time": [len(enc.layers), int(enc.d_model), int(enc.conv_context_size[0])],
    }


# --------------------------------------------------------------------------- ONNX


def onnx_io(path: Path) -> dict[str, dict[str, Any]]:
    """Names, element types and shapes of a graph's inputs and outputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values: Any) -> dict[str, Any]:
        out = {}
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in t.shape.dim]
            out[v.name] = {"dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims}
        return out

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}


def graph_file(profile: str, key: str) -> str:
    """File name of a profile's encoder graph: ``ctc`` → ``encoder-la13.onnx``, ``rnnt_int8`` →
    ``encoder-la13.rnnt.int8.onnx`` (the CTC graph keeps the name it had before RNNT support)."""
    head, _, variant = key.partition("_")
    parts = [f"encoder-{profile}", *([head] if head != "ctc" else []), *([variant] if variant else [])]
    return ".".join(parts) + ".onnx"


def _random_chunks(facts: dict[str, Any], n_mels: int, n: int, seed: int) -> list[np.ndarray]:
    """Log-mel-like random chunks [1, n_mels, pre_encode + chunk] (first with the zero cache)."""
    rng = np.random.default_rng(seed)
    total = facts["chunk_frames"] * n
    mel = rng.normal(-6.0, 3.0, size=(1, n_mels, total)).astype(np.float32)
    pre = facts["pre_encode_cache_size"]
    padded = np.concatenate([np.full((1, n_mels, pre), PRE_ENCODE_FILL, np.float32), mel], axis=2)
    step = facts["chunk_frames"]
    return [padded[:, :, i * step : i * step + pre + step] for i in range(n)]


def run_onnx_stream(path: Path, chunks: list[np.ndarray], facts: dict[str, Any]) -> np.ndarray:
    """Per-frame output rows [frames, width] of ``chunks`` streamed through the ONNX encoder,
    caches carried over: CTC log-probs, or (RNNT encoder graphs) the encoder output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ch = np.zeros([1, *facts["cache_last_channel"]], np.float32)
    tm = np.zeros([1, *facts["cache_last_time"]], np.float32)
    ln = np.zeros([1], np.int64)
    outs = []
    for c in chunks:
        lp, _, ch, tm, ln = sess.run(
            None,
            {
                "audio_signal": c,
                "length": np.array([c.shape[2]], np.int64),
                "cache_last_channel": ch,
                "cache_last_time": tm,
                "cache_last_channel_len": ln,
            },
        )
        # An RNNT encoder graph returns [B, d_model, T]; rows are frames everywhere else.
        outs.append(lp[0] if sess.get_outputs()[0].name == "logprobs" else lp[0].T)
    return np.concatenate(outs, axis=0)


def run_nemo_stream(model: Any, chunks: list[np.ndarray], facts: dict[str, Any], head: str) -> np.ndarray:
    """The same stream through NeMo's own cache-aware step (the encoder part of
    ``conformer_stream_step``), then the CTC head for ``ctc``: the reference rows."""
    import torch

    ctc = ctc_module(model) if head == "ctc" else None
    ch, tm, ln = model.encoder.get_initial_cache_state(batch_size=1)
    outs = []
    with torch.no_grad():
        for c in chunks:
            x = torch.from_numpy(c)
            encoded, _, ch, tm, ln = model.encoder.cache_aware_stream_step(
                processed_signal=x,
                processed_signal_length=torch.tensor([x.shape[2]]),
                cache_last_channel=ch,
                cache_last_time=tm,
                cache_last_channel_len=ln,
                keep_all_outputs=False,
                drop_extra_pre_encoded=facts["drop_extra_pre_encoded"],
            )
            rows = ctc(encoder_output=encoded) if ctc is not None else encoded.transpose(1, 2)
            outs.append(rows[0, : facts["encoder_frames"]].cpu().numpy())
    return np.concatenate(outs, axis=0)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (activations stay fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


def share_weights(paths: list[Path], weights: Path, min_bytes: int = 1024) -> None:
    """Move the large tensors of several graphs into one content-addressed external file.

    Every look-ahead graph carries the same weights (and the same relative positional
    encoding table, stored as a ``Constant`` node); only the attention masks differ. Storing
    each distinct tensor once keeps the shipped model a third of the size. onnxruntime reads
    ONNX external data relative to the graph's folder, so the graphs stay loadable by path.
    """
    import onnx
    from onnx import numpy_helper

    offsets: dict[str, tuple[int, int]] = {}
    with weights.open("wb") as blob:
        for path in paths:
            model = onnx.load(str(path))
            graph = model.graph
            # Large constants become initializers so that they can live in the external file.
            for node in list(graph.node):
                if node.op_type != "Constant" or len(node.attribute) != 1 or node.attribute[0].name != "value":
                    continue
                tensor = node.attribute[0].t
                if numpy_helper.to_array(tensor).nbytes < min_bytes:
                    continue
                tensor.name = node.output[0]
                graph.initializer.append(tensor)
                graph.node.remove(node)
            for tensor in graph.initializer:
                array = numpy_helper.to_array(tensor)
                if array.nbytes < min_bytes:
                    continue
                raw = numpy_helper.from_array(array).raw_data
                key = hashlib.sha256(raw + str(array.dtype).encode() + str(array.shape).encode()).hexdigest()
                if key not in offsets:
                    # 4 KiB alignment lets onnxruntime map the data instead of copying it.
                    blob.write(b"\0" * (-blob.tell() % 4096))
                    offsets[key] = (blob.tell(), len(raw))
                    blob.write(raw)
                offset, length = offsets[key]
                for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                    tensor.ClearField(field)
                del tensor.external_data[:]
                for k, v in (("location", weights.name), ("offset", str(offset)), ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = k, v
                tensor.data_location = onnx.TensorProto.EXTERNAL
            onnx.save(model, str(path))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def nemo_export(model: Any, head: str, dst: Path, joint_dst: Path | None) -> None:
    """Write ``head``'s encoder graph to ``dst`` with NeMo's own exporter. A transducer export
    also writes the prediction network + joint: kept as ``joint_dst`` when one is given."""
    select_head(model, head)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        model.export(str(tmp_path), check_trace=False)
        if head == "ctc":
            shutil.move(str(tmp_path), dst)
            return
        # NeMo names a transducer's graphs "<subnet>-<file name>".
        shutil.move(str(Path(tmp) / "encoder-model.onnx"), dst)
        if joint_dst is not None:
            shutil.move(str(Path(tmp) / "decoder_joint-model.onnx"), joint_dst)


def export_heads(
    model: Any,
    heads: list[str],
    graph: str,
    out: Path,
    args: argparse.Namespace,
    run_onnx: Callable[[Path], np.ndarray],
    run_nemo: Callable[[str], np.ndarray],
) -> dict[str, Any]:
    """Export every head's encoder graph ``encoder-<graph>[.<head>].onnx`` and check it:
    ``run_onnx(path)`` must give what ``run_nemo(head)`` gives. Returns the ``onnx``, ``io``
    and ``export_check`` entries of the profile."""
    files: dict[str, str] = {}
    io: dict[str, Any] = {}
    check: dict[str, Any] = {}
    for head in heads:
        path = out / graph_file(graph, head)
        joint = out / DECODER_JOINT if head == "rnnt" and not (out / DECODER_JOINT).exists() else None
        nemo_export(model, head, path, joint)
        files[head] = path.name
        io[head] = onnx_io(path)
        got = run_onnx(path)
        check[f"{head}_vs_nemo_max_abs"] = float(np.abs(run_nemo(head) - got).max())
        if args.int8:
            key = f"{head}_int8"
            q_path = out / graph_file(graph, key)
            quantize_int8(path, q_path)
            q = run_onnx(q_path)
            files[key] = q_path.name
            check[f"{key}_vs_fp32_max_abs"] = float(np.abs(q - got).max())
            if head == "ctc":
                check["ctc_int8_vs_fp32_argmax_agree"] = float((q.argmax(-1) == got.argmax(-1)).mean())
    check["onnx_vs_nemo_max_abs"] = max(check[f"{h}_vs_nemo_max_abs"] for h in heads)
    return {"onnx": files, "io": io, "export_check": check}


def export_profile(
    model: Any, ctx: list[int], feats: FeatureSettings, heads: list[str], out: Path, args: argparse.Namespace
) -> dict:
    """Export and check the encoder graphs of one look-ahead; returns its manifest entry."""
    model.encoder.set_default_att_context_size(ctx)
    # set_export_config re-runs setup_streaming_params for the context just selected.
    model.set_export_config({"cache_support": "True"})
    facts = profile_facts(model, ctx, feats)
    name = f"la{ctx[1]}"
    chunks = _random_chunks(facts, feats.n_mels, args.check_chunks, seed=ctx[1])
    facts.update(
        export_heads(
            model,
            heads,
            name,
            out,
            args,
            run_onnx=lambda path: run_onnx_stream(path, chunks, facts),
            run_nemo=lambda head: run_nemo_stream(model, chunks, facts, head),
        )
    )
    facts["export_check"]["chunks"] = args.check_chunks
    LOG.info("%s: %s %s", name, {k: facts[k] for k in ("chunk_samples", "first_chunk_samples")}, facts["export_check"])
    return facts


def export_cache_aware(
    model: Any, feats: FeatureSettings, heads: list[str], out: Path, args: argparse.Namespace
) -> dict[str, dict]:
    """Export and check the encoder graphs of every look-ahead; returns the profiles."""
    contexts = [list(map(int, c)) for c in model.encoder.att_context_size_all]
    default = list(map(int, model.encoder.att_context_size))
    if len({c[1] for c in contexts}) != len(contexts):
        raise SystemExit(f"att_context_size {contexts}: profiles are named by right context, which must differ")
    profiles = {}
    for ctx in contexts:
        facts = export_profile(model, ctx, feats, heads, out, args)
        facts["default"] = ctx == default
        profiles[f"la{ctx[1]}"] = facts

    def probe(path: Path, facts: dict) -> np.ndarray:
        return run_onnx_stream(path, _random_chunks(facts, feats.n_mels, 2, seed=7), facts)

    share_all_weights(profiles, out, probe)
    return profiles


def share_all_weights(profiles: dict[str, dict], out: Path, probe: Callable[[Path, dict], np.ndarray]) -> None:
    """One weights file for the fp32 graphs of both heads (they share every encoder tensor), one
    for the int8 ones."""
    share_and_verify(profiles, out, ("ctc", "rnnt"), "encoder.weights", probe)
    share_and_verify(profiles, out, ("ctc_int8", "rnnt_int8"), "encoder.int8.weights", probe)


def buffer_geometry(model: Any, feats: FeatureSettings, args: argparse.Namespace) -> buffered.BufferGeometry:
    """The window of the ``--buffer-*`` options (``SystemExit`` when they do not fit the model)."""
    try:
        return buffered.BufferGeometry.from_seconds(
            args.buffer_chunk_s,
            args.buffer_left_s,
            args.buffer_right_s,
            hop_length=feats.hop_length,
            sample_rate=feats.sample_rate,
            subsampling=int(model.encoder.subsampling_factor),
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def export_buffered(
    model: Any, feats: FeatureSettings, heads: list[str], out: Path, args: argparse.Namespace
) -> dict[str, dict]:
    """Export and check the offline encoder graphs; returns the one buffered profile."""
    g = buffer_geometry(model, feats, args)
    facts = buffered.profile_facts(
        g,
        hop_length=feats.hop_length,
        win_length=feats.win_length,
        sample_rate=feats.sample_rate,
        normalize=feats.normalize,
        fill=buffered.silence_level(feats.log_guard),
        att_context_size=[int(c) for c in model.encoder.att_context_size],
    )
    windows = buffered.random_windows(feats.n_mels, g, seed=0)
    ctc = ctc_module(model)
    facts.update(
        export_heads(
            model,
            heads,
            "offline",
            out,
            args,
            run_onnx=lambda path: buffered.run_onnx_windows(path, windows),
            run_nemo=lambda head: buffered.run_nemo_windows(model, windows, ctc if head == "ctc" else None),
        )
    )
    facts["export_check"]["windows"] = [list(w.shape) for w in windows]
    facts["default"] = True
    LOG.info("%s: buffer %s %s", g.profile, facts["buffer"], facts["export_check"])
    profiles = {g.profile: facts}
    share_all_weights(
        profiles, out, lambda path, _: buffered.run_onnx_windows(path, buffered.random_windows(feats.n_mels, g, seed=7))
    )
    return profiles


def rnnt_facts(model: Any, path: Path, blank_id: int) -> dict[str, Any]:
    """What the Triton RNNT decoder needs to know about ``decoder_joint`` (checked against
    NeMo's modules on random states, every kind of previous token included)."""
    import onnxruntime as ort
    import torch

    greedy = model.cfg.decoding.greedy
    # NeMo's greedy decoders read either key; the serving decoder needs a finite bound.
    max_symbols = greedy.get("max_symbols") or greedy.get("max_symbols_per_step")
    if not max_symbols:
        raise SystemExit("decoding.greedy.max_symbols is unset: the RNNT decoder needs a bound per frame")
    layers, hidden = int(model.decoder.pred_rnn_layers), int(model.decoder.pred_hidden)
    rng = np.random.default_rng(0)
    targets = np.array([[blank_id], [0], [blank_id - 1]], np.int32)
    b = targets.shape[0]
    feeds = {
        "encoder_outputs": rng.standard_normal((b, int(model.encoder.d_model), 1)).astype(np.float32),
        "targets": targets,
        "target_length": np.ones(b, np.int32),
        "input_states_1": rng.standard_normal((layers, b, hidden)).astype(np.float32),
        "input_states_2": rng.standard_normal((layers, b, hidden)).astype(np.float32),
    }
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        # The two calls NeMo's greedy RNNT decoders make per step (_pred_step, _joint_step).
        g, states = model.decoder.predict(
            torch.from_numpy(targets).long(),
            state=[torch.from_numpy(feeds["input_states_1"]), torch.from_numpy(feeds["input_states_2"])],
            add_sos=False,
            batch_size=b,
        )
        joint = model.joint.joint(torch.from_numpy(feeds["encoder_outputs"]).transpose(1, 2), g)
        want = [joint.numpy(), *(s.numpy() for s in states)]
    # The exported joint returns logits (NeMo's export switches its log_softmax off): compare
    # the log-probs the decoder derives from them.
    diffs = [np.abs(_log_softmax(got[0]) - _log_softmax(want[0])).max()]
    diffs += [np.abs(g - w).max() for g, w in zip(got[2:], want[1:], strict=True)]
    return {
        "decoder_joint": path.name,
        "pred_layers": layers,
        "pred_hidden": hidden,
        "max_symbols": int(max_symbols),
        "io": onnx_io(path),
        "export_check": {"onnx_vs_nemo_max_abs": float(max(diffs))},
    }


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def share_and_verify(
    profiles: dict[str, dict], out: Path, keys: tuple[str, ...], weights: str, probe: Callable[[Path, dict], np.ndarray]
) -> None:
    """Externalise the weights of every profile's ``keys`` graphs into ``weights``, then check
    that each rewritten graph still gives bit-identical output (``probe(graph, profile)``)."""
    graphs = [(n, p, key) for n, p in profiles.items() for key in keys if key in p["onnx"]]
    if not graphs:
        return
    before = {(n, key): probe(out / p["onnx"][key], p) for n, p, key in graphs}
    share_weights([out / p["onnx"][key] for _, p, key in graphs], out / weights)
    for n, p, key in graphs:
        after = probe(out / p["onnx"][key], p)
        if not np.array_equal(before[(n, key)], after):
            raise RuntimeError(f"{p['onnx'][key]} changed when its weights were externalised")
        p.setdefault("onnx_sha256", {})[p["onnx"][key]] = file_sha256(out / p["onnx"][key])
        p.setdefault("onnx_weights", {})[key] = weights


# --------------------------------------------------------------------------- main


def build_manifest(
    model: Any, args: argparse.Namespace, feats: FeatureSettings, vocab: list[str], heads: list[str]
) -> dict:
    """The model-level manifest (profiles are filled in by the caller)."""
    enc = model.encoder
    tokenizer = "bpe" if hasattr(model, "tokenizer") else "char"
    kind = {("ctc",): "ctc", ("rnnt",): "rnnt", ("ctc", "rnnt"): "hybrid-rnnt-ctc"}[tuple(heads)]
    arch = f"fastconformer-{kind}-{enc.d_model}x{len(enc.layers)}"
    digest = weights_digest(model, vocab)
    return {
        "schema": MANIFEST_SCHEMA,
        "model": args.name,
        "display_name": args.display_name or f"{args.name} ({arch})",
        "version": args.version,
        "uuid": str(uuid.uuid5(UUID_NAMESPACE, digest)),
        "model_sha256": digest,
        "arch": arch,
        "source": args.model.name,
        "nemo_class": type(model).__name__,
        "languages": args.language or ["en"],
        "sample_rate": feats.sample_rate,
        "tokenizer": tokenizer,
        "vocabulary": vocab,
        "blank_id": len(vocab),
        # SentencePiece marks word starts; character vocabularies carry the space as a token.
        "word_boundary": "\u2581" if tokenizer == "bpe" else " ",
        "subsampling_factor": int(enc.subsampling_factor),
        "frame_shift_s": enc.subsampling_factor * feats.hop_length / feats.sample_rate,
        "features": {"file": "features.npz", **asdict(feats)},
        "encoder": {"d_model": int(enc.d_model), "n_layers": len(enc.layers)},
        # Heads the serving path can use: "ctc" (encoder graphs with the CTC head) and/or
        # "rnnt" (head-less encoder graphs + decoder_joint, described under "rnnt").
        "heads": heads,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if not re.fullmatch(r"[a-z0-9]+", args.name):
        raise SystemExit("--name must match [a-z0-9]+")

    import torch
    from nemo.collections.asr.models import ASRModel

    torch.manual_seed(0)
    model = ASRModel.restore_from(str(args.model), map_location="cpu")
    model.eval()
    heads = model_heads(model)
    vocab = vocabulary(model)
    feats, fb, window, feat_problems = feature_settings(model)
    if feat_problems.unsupported:
        reasons = "; ".join(feat_problems.unsupported)
        raise SystemExit(f"the serving feature extractor cannot reproduce this preprocessor: {reasons}")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in [*args.out.glob("encoder-*.onnx"), *args.out.glob("encoder*.weights"), args.out / DECODER_JOINT]:
        stale.unlink(missing_ok=True)
    np.savez(
        args.out / "features.npz",
        filterbank=fb,
        window=window,
        **{k: np.asarray(v) for k, v in asdict(feats).items()},
    )
    manifest = build_manifest(model, args, feats, vocab, heads)
    problems = feat_problems.streaming + streaming_problems(model.encoder)
    if problems:
        LOG.warning("not cache-aware streamable, exported for buffered serving: %s", "; ".join(problems))
        manifest.update(
            mode="buffered", buffered_reasons=problems, profiles=export_buffered(model, feats, heads, args.out, args)
        )
    else:
        manifest.update(mode="cache_aware", profiles=export_cache_aware(model, feats, heads, args.out, args))
    if "rnnt" in heads:
        manifest["rnnt"] = rnnt_facts(model, args.out / DECODER_JOINT, manifest["blank_id"])
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    LOG.info("wrote %s (mode %s, profiles %s)", args.out, manifest["mode"], list(manifest["profiles"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
