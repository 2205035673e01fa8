"""Build a randomly initialised cache-aware streaming FastConformer and save it as ``.nemo``.

The model is assembled from NeMo's own classes (``EncDecCTCModelBPE``,
``EncDecHybridRNNTCTCBPEModel`` with ``--hybrid``, ``EncDecRNNTBPEModel`` with ``--rnnt``) with
the streaming settings the serving path relies on: ``ConformerEncoder`` with ``dw_striding`` x8
causal subsampling, ``chunked_limited`` attention with a multi-look-ahead ``att_context_size``
list, causal convolutions, and a preprocessor without per-utterance normalisation.

``--offline`` builds what NeMo's offline FastConformer recipes train instead (unlimited
attention, symmetric convolutions and subsampling, batch norm, ``per_feature`` normalisation):
a model the serving path can only run buffered.

Its weights are random; it exists to wire and measure the serving path before a trained
model is available. A SentencePiece BPE tokenizer is trained on text that is already on the
machine (Debian package descriptions, ``/usr/share/doc``) unless ``--tokenizer DIR`` names
one. Everything is seeded: the same arguments give the same weights and tokenizer.

Run with the NeMo environment::

    .venv-nemo/bin/python scripts/make_random_model.py --out runs/random/model.nemo
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG = logging.getLogger("make_random_model")

DEFAULT_CONTEXTS = "[[70,13],[70,6],[70,1]]"
_WORD = re.compile(r"[a-z']+")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the script."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="path of the .nemo file to write")
    heads = p.add_mutually_exclusive_group()
    heads.add_argument("--hybrid", action="store_true", help="hybrid RNNT+CTC model instead of pure CTC")
    heads.add_argument("--rnnt", action="store_true", help="pure RNNT (transducer) model instead of pure CTC")
    p.add_argument("--offline", action="store_true", help="offline (not cache-aware) encoder: full attention context")
    p.add_argument("--d-model", type=int, default=176)
    p.add_argument("--n-layers", type=int, default=8)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--conv-kernel", type=int, default=9)
    p.add_argument("--subsampling-channels", type=int, default=-1, help="-1 = d_model (NeMo's convention)")
    p.add_argument(
        "--att-context-size",
        default=DEFAULT_CONTEXTS,
        help="JSON list of [left, right] encoder-frame contexts, first one is the default",
    )
    p.add_argument(
        "--pred-hidden", type=int, default=320, help="RNNT prediction network and joint width (--hybrid, --rnnt)"
    )
    p.add_argument("--vocab-size", type=int, default=256)
    p.add_argument("--tokenizer", type=Path, help="existing NeMo SentencePiece tokenizer dir (tokenizer.model)")
    p.add_argument(
        "--tokenizer-out",
        type=Path,
        help="where to train the tokenizer (default: <out dir>/tokenizer_spe_bpe_v<vocab>)",
    )
    p.add_argument("--max-sentences", type=int, default=200_000, help="tokenizer training text cap")
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- tokenizer text


def _normalise(line: str) -> str:
    """Lower-case words of letters and apostrophes: what the acoustic model can spell."""
    return " ".join(_WORD.findall(line.lower()))


def _apt_descriptions() -> Iterator[str]:
    """Short and long package descriptions from the local apt cache (no network)."""
    try:
        out = subprocess.run(
            ["apt-cache", "dumpavail"], check=True, capture_output=True, text=True, errors="replace"
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        LOG.warning("apt-cache dumpavail unavailable (%s)", exc)
        return
    in_desc = False
    for line in out.splitlines():
        if line.startswith("Description:"):
            in_desc = True
            yield line.removeprefix("Description:")
        elif in_desc and line.startswith(" ") and line.strip() != ".":
            # Long descriptions are sentence text wrapped over several lines.
            yield from line.split(". ")
        else:
            in_desc = False


def _usr_share_doc() -> Iterator[str]:
    """Plain and gzipped text files under /usr/share/doc, in a stable order."""
    root = Path("/usr/share/doc")
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", errors="replace") as fh:
                    text = fh.read()
            elif path.suffix in ("", ".txt", ".md") or path.name.startswith(("README", "changelog")):
                text = path.read_text(errors="replace")
            else:
                continue
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        yield from text.splitlines()


def collect_sentences(limit: int) -> list[str]:
    """Deduplicated normalised sentences, deterministic for a given machine state."""
    seen: set[str] = set()
    for source in (_apt_descriptions(), _usr_share_doc()):
        for raw in source:
            s = _normalise(raw)
            if len(s.split()) >= 3 and s not in seen:
                seen.add(s)
                if len(seen) >= limit:
                    return sorted(seen)
    return sorted(seen)


def train_tokenizer(out_dir: Path, vocab_size: int, max_sentences: int) -> Path:
    """Train (or reuse) a NeMo-layout SentencePiece BPE tokenizer in ``out_dir``."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    if (out_dir / "tokenizer.model").is_file():
        LOG.info("reusing tokenizer %s", out_dir)
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = collect_sentences(max_sentences)
    if len(sentences) < 1000:
        raise SystemExit(f"only {len(sentences)} sentences of offline text found; pass --tokenizer DIR")
    text = out_dir / "text.txt"
    text.write_text("\n".join(sentences) + "\n")
    LOG.info("training BPE tokenizer (vocab %d) on %d sentences", vocab_size, len(sentences))
    # sample_size larger than the corpus: SentencePiece then reads every line, no random sampling.
    create_spt_model(
        str(text),
        vocab_size=vocab_size,
        sample_size=len(sentences) + 1,
        do_lower_case=True,
        tokenizer_type="bpe",
        output_dir=str(out_dir),
    )
    text.unlink()
    return out_dir


# --------------------------------------------------------------------------- model config


def model_config(args: argparse.Namespace, tokenizer_dir: Path) -> dict[str, Any]:
    """The NeMo model config (mirrors NeMo's cache-aware FastConformer streaming recipes, or
    with ``--offline`` the offline ones)."""
    contexts = json.loads(args.att_context_size)
    if not contexts or not all(isinstance(c, list) and len(c) == 2 for c in contexts):
        raise SystemExit("--att-context-size must be a JSON list of [left, right] pairs")
    ctc_decoder: dict[str, Any] = {
        "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
        "feat_in": None,
        "num_classes": -1,
        "vocabulary": [],
    }
    cfg: dict[str, Any] = {
        "sample_rate": 16000,
        "log_prediction": False,
        "skip_nan_grad": False,
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            # Streaming cannot normalise over a whole utterance.
            "normalize": "NA",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 80,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            # Applied in training mode only; eval features are deterministic.
            "dither": 1.0e-5,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2,
            "time_masks": 10,
            "freq_width": 27,
            "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80,
            "feat_out": -1,
            "n_layers": args.n_layers,
            "d_model": args.d_model,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": args.subsampling_channels,
            "causal_downsampling": True,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "n_heads": args.n_heads,
            "att_context_size": contexts,
            "att_context_probs": None,
            "att_context_style": "chunked_limited",
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": args.conv_kernel,
            # Batch norm statistics would leak across chunks in training; NeMo's streaming
            # recipes use layer norm in the convolution module.
            "conv_norm_type": "layer_norm",
            "conv_context_size": "causal",
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "optim": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 1e-3},
    }
    if args.offline:
        offline_settings(cfg)
    if args.hybrid or args.rnnt:
        cfg["model_defaults"] = {
            "enc_hidden": args.d_model,
            "pred_hidden": args.pred_hidden,
            "joint_hidden": args.pred_hidden,
        }
        cfg["decoder"] = {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": args.pred_hidden, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.2},
        }
        cfg["joint"] = {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {"joint_hidden": args.pred_hidden, "activation": "relu", "dropout": 0.2},
        }
        cfg["decoding"] = {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}}
        cfg["loss"] = {"loss_name": "default"}
    if args.hybrid:
        cfg["aux_ctc"] = {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            "decoder": ctc_decoder,
            "decoding": {"strategy": "greedy"},
        }
    elif not args.rnnt:
        cfg["decoder"] = ctc_decoder
    return cfg


def offline_settings(cfg: dict[str, Any]) -> None:
    """Turn ``cfg`` into NeMo's offline FastConformer recipe (``fastconformer_ctc_bpe.yaml``):
    every setting that the cache-aware recipe changes for streaming goes back."""
    cfg["preprocessor"]["normalize"] = "per_feature"
    cfg["encoder"].update(
        causal_downsampling=False,
        att_context_size=[-1, -1],
        att_context_style="regular",
        conv_norm_type="batch_norm",
        conv_context_size=None,
    )


def build_model(args: argparse.Namespace, tokenizer_dir: Path) -> Any:
    """Instantiate the NeMo model with seeded random weights, in eval mode."""
    import numpy as np
    import torch
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecHybridRNNTCTCBPEModel, EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    cfg = OmegaConf.create(model_config(args, tokenizer_dir))
    cls = EncDecHybridRNNTCTCBPEModel if args.hybrid else EncDecRNNTBPEModel if args.rnnt else EncDecCTCModelBPE
    model = cls(cfg=cfg)
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.tokenizer:
        if not (args.tokenizer / "tokenizer.model").is_file():
            raise SystemExit(f"{args.tokenizer}/tokenizer.model not found")
        tok_dir = args.tokenizer
    else:
        tok_dir = train_tokenizer(
            args.tokenizer_out or args.out.parent / f"tokenizer_spe_bpe_v{args.vocab_size}",
            args.vocab_size,
            args.max_sentences,
        )
    model = build_model(args, tok_dir)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_to(str(args.out))
    LOG.info("wrote %s (%s, %.2f M parameters)", args.out, type(model).__name__, n_params / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
