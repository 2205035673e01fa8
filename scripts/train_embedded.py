#!/usr/bin/env python3
"""Train the embedded cache-aware streaming FastConformer-CTC (NeMo modules, plain PyTorch loop).

    # 1. tokenizer + randomly initialised model of the final architecture
    python scripts/train_embedded.py init
    # 2. train; the same command resumes from <run-dir>/last.pt
    nohup nice -n 15 python scripts/train_embedded.py train >> /work/runs/embedded/train.log 2>&1 &
    # seconds per step of the architecture on this machine (random audio)
    python scripts/train_embedded.py bench --d-model 176 --n-layers 8

A plain loop (not Lightning) keeps resumption exact and cheap: last.pt holds the weights,
optimizer, step and data position; the learning-rate schedule is a pure function of the step
and of the command-line flags, so a later session can start the decay phase by resuming with
a different --decay-start. Whenever validation WER improves, best.pt and best.nemo are written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import augment  # noqa: E402
import make_corpus  # noqa: E402
from eval_wer import load_audio, read_manifest, score, transcribe  # noqa: E402

HERE = Path(__file__).resolve().parent
RUN_DIR = Path(os.environ.get("DDX_RUN_DIR", "/work/runs/embedded"))
CORPUS = Path(os.environ.get("DDX_CORPUS", "/work/runs/corpus"))


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", flush=True)


# ---------------------------------------------------------------- model


# SentencePiece trainer options of the embedded model's tokenizer (recover_nemo.py rebuilds a
# tokenizer with the same normaliser from them).
SPM_OPTIONS = {"model_type": "bpe", "character_coverage": 1.0, "unk_id": 0, "bos_id": -1, "eos_id": -1,
               "minloglevel": 2}


def train_tokenizer(text: Path, out_dir: Path, vocab_size: int) -> None:
    """SentencePiece BPE in the layout NeMo's `tokenizer.dir` expects."""
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(out_dir / "tokenizer"), vocab_size=vocab_size, num_threads=2,
        **SPM_OPTIONS,
    )
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    write_vocab(out_dir, [sp.id_to_piece(i) for i in range(sp.get_piece_size())])


def write_vocab(out_dir: Path, pieces: list[str]) -> None:
    (out_dir / "vocab.txt").write_text("".join(p + "\n" for p in pieces))


def build_model(config: Path, tokenizer_dir: Path, overrides: dict[str, int] | None = None):
    """A randomly initialised CTC model of ``config``: a training config with ``model:`` at the
    root (``embedded_model.yaml``) or the ``model_config.yaml`` of a ``.nemo``."""
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from omegaconf import open_dict

    cfg = OmegaConf.load(config)
    cfg = cfg.model if "model" in cfg else cfg
    with open_dict(cfg):
        # A .nemo's config names its own archive's tokenizer files, and data sets that are not here.
        cfg.tokenizer = {"dir": str(tokenizer_dir), "type": "bpe"}
        for split in ("train_ds", "validation_ds", "test_ds"):
            cfg.pop(split, None)
        for key, value in (overrides or {}).items():
            cfg.encoder[key] = value
        cfg.decoder.feat_in = cfg.encoder.d_model
        cfg.decoder.num_classes = -1
        cfg.decoder.vocabulary = []
    return EncDecCTCModelBPE(cfg=cfg)


def encoder_overrides(args: argparse.Namespace) -> dict[str, int]:
    o = {}
    if args.d_model:
        o.update(d_model=args.d_model, subsampling_conv_channels=args.d_model)
    if args.n_layers:
        o["n_layers"] = args.n_layers
    return o


def cmd_init(args: argparse.Namespace) -> None:
    tok_dir = args.run_dir / "tokenizer"
    train_tokenizer(args.corpus / "text" / "train.txt", tok_dir, args.vocab_size)
    torch.manual_seed(args.seed)
    model = build_model(args.config, tok_dir, encoder_overrides(args))
    n_params = sum(p.numel() for p in model.parameters())
    model.save_to(str(args.run_dir / "init.nemo"))
    enc = model.cfg.encoder
    (args.run_dir / "READY_INIT").write_text(
        f"init.nemo: randomly initialised, final architecture; ready for export wiring.\n"
        f"EncDecCTCModelBPE, ConformerEncoder d_model={enc.d_model} n_layers={enc.n_layers} "
        f"n_heads={enc.n_heads} subsampling={enc.subsampling} x{enc.subsampling_factor} "
        f"causal_downsampling={enc.causal_downsampling} att_context_style={enc.att_context_style} "
        f"att_context_size={OmegaConf.to_container(enc.att_context_size)} "
        f"conv_kernel_size={enc.conv_kernel_size} conv_context_size={enc.conv_context_size}\n"
        f"preprocessor: 80 mel, 16 kHz, normalize=NA. CTC vocab: {model.tokenizer.vocab_size} BPE + blank "
        f"(blank id {model.tokenizer.vocab_size}). params: {n_params / 1e6:.2f} M.\n"
        f"Trained weights will keep this exact architecture/tokenizer: best.nemo is a drop-in replacement.\n"
    )
    log(f"init.nemo written ({n_params / 1e6:.2f} M params, vocab {model.tokenizer.vocab_size})")


# ---------------------------------------------------------------- data


class ManifestDataset(Dataset):
    def __init__(self, rows: list[dict], tokenizer) -> None:
        self.rows = rows
        self.tokens = [tokenizer.text_to_ids(r["text"]) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(load_audio(self.rows[i]["audio_filepath"])), torch.tensor(self.tokens[i])


class SynthDataset(Dataset):
    """Training audio synthesised on the fly (make_corpus voices and augmentation), for machines
    where the corpus cannot travel but the TTS engines can: every epoch draws a new voice and
    channel for each sentence. Index `epoch * len(self) + i` is item i of that epoch."""

    SECONDS_PER_CHAR = 0.068  # espeak/flite at the corpus's rates: sizes buckets before synthesis

    PAD_LEAD_S, PAD_TRAIL_S = 2.5, 1.0

    def __init__(self, texts: list[str], fsdd: list[Path], fsdd_items: int, tokenizer, seed: int,
                 pad_silence: float = 0.5, join: float = 0.0, band_noise: float = 0.0) -> None:
        self.texts, self.fsdd, self.seed = texts, fsdd, seed
        self.pad_silence = pad_silence  # share of items given leading and trailing silence
        self.band_noise = band_noise  # share of items given noise in one band, pauses included
        self.n_fsdd = fsdd_items if fsdd else 0
        self.tokenizer = tokenizer
        # Sentence i is read together with sentence partner[i] (None: alone). Fixed per index,
        # not per epoch, so that the bucketing durations below hold.
        rng = random.Random(f"{seed}/join")
        self.partner = [rng.randrange(len(texts)) if rng.random() < join else None for _ in texts]

    def __len__(self) -> int:
        return len(self.texts) + self.n_fsdd

    def durations(self) -> list[float]:
        # FSDD items: 1-5 digits of ~0.45 s plus pauses.
        pad = self.pad_silence * (self.PAD_LEAD_S + self.PAD_TRAIL_S) / 2
        # A joined item has a pause before each of its sentences (make_corpus._synth_tts).
        pause = sum(make_corpus.Job.PAUSE_S) / 2
        return [0.3 + pad + self.SECONDS_PER_CHAR * len(self.text(i)) + (j is not None) * 2 * pause
                for i, j in enumerate(self.partner)] + [1.8 + pad] * self.n_fsdd

    def parts(self, i: int) -> tuple[str, ...]:
        j = self.partner[i]
        return (self.texts[i],) if j is None else (self.texts[i], self.texts[j])

    def text(self, i: int) -> str:
        return " ".join(self.parts(i))

    def job(self, k: int):
        epoch, i = divmod(k, len(self))
        rng = random.Random(f"{self.seed}/{epoch}/{i}")
        seed = rng.randrange(2**31)
        if i < len(self.texts):
            engine, voice = make_corpus.training_voice(rng)
            parts = self.parts(i)
            job = make_corpus.Job(i, self.text(i), engine, voice, "", True, seed, parts=parts if len(parts) > 1 else ())
            return job, self.tokenizer.text_to_ids(job.text)
        files = rng.sample(self.fsdd, rng.choice(make_corpus.FSDD_STRING_LENGTHS))
        text = " ".join(make_corpus.fsdd_text(f) for f in files)
        job = make_corpus.Job(i, text, "fsdd", "", "", True, seed, fsdd_files=tuple(map(str, files)))
        return job, self.tokenizer.text_to_ids(text)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        job, tokens = self.job(k)
        audio = make_corpus.synthesize(job)
        if audio is None:  # an engine failure costs one item, not the run
            audio = make_corpus.synthesize(make_corpus.Job(job.idx, job.text, "espeak", "en-us", "", True, job.seed,
                                                           parts=job.parts))
        rng = np.random.default_rng(job.seed + 1)
        if rng.random() < self.pad_silence:
            audio = augment.pad_silence(audio, rng, self.PAD_LEAD_S, self.PAD_TRAIL_S)
        if rng.random() < self.band_noise:
            audio = augment.band_noise(audio, rng)
        return torch.from_numpy(audio.astype(np.float32)), torch.tensor(tokens)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    a_len = torch.tensor([len(a) for a, _ in items])
    t_len = torch.tensor([len(t) for _, t in items])
    audio = torch.zeros(len(items), int(a_len.max()))
    tokens = torch.zeros(len(items), max(1, int(t_len.max())), dtype=torch.long)
    for k, (a, t) in enumerate(items):
        audio[k, : len(a)] = a
        tokens[k, : len(t)] = t
    return audio, a_len, tokens, t_len


def epoch_batches(durations: list[float], epoch: int, seed: int, batch_seconds: float,
                  max_batch: int) -> list[list[int]]:
    """Duration-bucketed batches, reproducible from (seed, epoch) so resumption can skip ahead.

    Shuffle, sort within pools of ~50 batches (little padding), cut at `batch_seconds` of padded
    audio, then shuffle the batch order.
    """
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(durations)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pool = 50 * max_batch
    for p in range(0, len(order), pool):
        chunk = sorted(order[p : p + pool], key=lambda i: durations[i])
        cur: list[int] = []
        for i in chunk:
            if cur and (len(cur) + 1) * durations[i] > batch_seconds or len(cur) >= max_batch:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------- schedule


def lr_at(step: int, a: argparse.Namespace) -> float:
    """Linear warm-up, constant plateau, then cosine decay to --min-lr over --decay-steps."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if step < a.decay_start:
        return a.lr
    t = min(1.0, (step - a.decay_start) / max(1, a.decay_steps))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------- training


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def validate(model, rows: list[dict]) -> dict[str, float]:
    s = score([r["text"] for r in rows], transcribe(model, rows))
    return {"wer": s.wer, "cer": s.cer, "exact": s.exact}


def cmd_train(args: argparse.Namespace) -> None:
    from nemo.collections.asr.models import EncDecCTCModelBPE

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    run = args.run_dir
    model = EncDecCTCModelBPE.restore_from(str(run / "init.nemo"), map_location="cpu").to(device)
    val_rows = [r for m in args.val_manifest for r in read_manifest(m, args.val_limit)]
    if args.no_spec_augment:
        model.spec_augmentation = None
    else:
        from nemo.collections.asr.modules import SpectrogramAugmentation

        # Features are not normalised (normalize: NA), so NeMo's default mask value 0 is a loud
        # band, not an average one: the trained model's loss went to chance level with it.
        spec = {k: v for k, v in OmegaConf.to_container(model.cfg.spec_augment).items() if k != "_target_"}
        model.spec_augmentation = SpectrogramAugmentation(**{**spec, "mask_value": args.mask_value}).to(device)
    if args.synth_text:
        # Training speakers only: the evaluation speakers never reach a batch.
        fsdd = make_corpus.fsdd_files(args.synth_fsdd, make_corpus.FSDD_TRAIN_SPEAKERS) if args.synth_fsdd else []
        texts = args.synth_text.read_text().split("\n")[:-1][: args.subset]
        data = SynthDataset(texts, fsdd, args.synth_fsdd_items, model.tokenizer, args.seed, args.pad_silence,
                            args.join, args.band_noise)
        durations = data.durations()
    else:
        rows = [r for m in args.train_manifest for r in read_manifest(m)
                if args.min_dur <= r["duration"] <= args.max_dur][: args.subset]
        data = ManifestDataset(rows, model.tokenizer)
        durations = [r["duration"] for r in rows]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=args.weight_decay)

    # best = (val WER, val CER): WER decides, CER breaks ties while WER is still ~100 %.
    step, epoch, batch_pos, best = 0, 0, 0, (float("inf"), float("inf"))
    last = run / "last.pt"
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        step, epoch, batch_pos, best = ck["step"], ck["epoch"], ck["batch_pos"], tuple(ck["best"])
        log(f"resumed from {last}: step {step}, epoch {epoch}, batch {batch_pos}, best val WER/CER {best}")
    elif args.init_encoder_from:
        # Warm start: a small-vocabulary CTC run leaves the blank plateau in a few hundred steps
        # where the 256-token head sits at chance for thousands; its encoder transfers as is.
        src = torch.load(args.init_encoder_from, map_location="cpu", weights_only=False)["model"]
        enc = {k: v for k, v in src.items() if k.startswith(("encoder.", "preprocessor."))}
        missing = model.load_state_dict(enc, strict=False).missing_keys
        log(f"encoder initialised from {args.init_encoder_from} ({len(enc)} tensors; "
            f"left at init: {sorted({k.split('.')[0] for k in missing})})")
    log(f"train: {len(data)} utts, {sum(durations) / 3600:.2f} h; val: {len(val_rows)} utts; device {device}; "
        f"args {vars(args)}")

    def checkpoint() -> None:
        save_atomic({"model": model.state_dict(), "optim": opt.state_dict(), "step": step, "epoch": epoch,
                     "batch_pos": batch_pos, "best": best, "args": {k: str(v) for k, v in vars(args).items()}},
                    last)

    def run_validation() -> None:
        nonlocal best
        t0 = time.time()
        m = validate(model, val_rows)
        improved = (m["wer"], m["cer"]) < best
        log(f"VAL step {step} WER {100 * m['wer']:.1f}% CER {100 * m['cer']:.1f}% exact {100 * m['exact']:.1f}% "
            f"({time.time() - t0:.0f} s){' best' if improved else ''}")
        with (run / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **m}) + "\n")
        if improved:
            best = (m["wer"], m["cer"])
            save_atomic({"model": model.state_dict(), "step": step, **m}, run / "best.pt")
            model.save_to(str(run / "best.nemo"))

    # SIGTERM/SIGINT (kill, session end) finish the current step, checkpoint and exit.
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    t_ckpt = t_val = time.time()
    loss_sum, n_sum, t_log, audio_sum, tok_sum = 0.0, 0, time.time(), 0.0, 0
    model.train()
    while step < args.max_steps:
        batches = epoch_batches(durations, epoch, args.seed, args.batch_seconds, args.max_batch)
        offset = epoch * len(data) if isinstance(data, SynthDataset) else 0
        loader: Iterator = iter(DataLoader(data, batch_sampler=[[offset + i for i in b] for b in batches[batch_pos:]],
                                           collate_fn=collate, num_workers=args.workers,
                                           prefetch_factor=4 if args.workers else None))
        for audio, a_len, tokens, t_len in loader:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, args)
            # After a warm start, fit the new CTC head before its random gradients reach the encoder.
            frozen = step < args.freeze_encoder_steps
            for p in model.encoder.parameters():
                p.requires_grad_(not frozen)
            audio, a_len, tokens, t_len = (x.to(device) for x in (audio, a_len, tokens, t_len))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                log_probs, enc_len, _ = model.forward(input_signal=audio, input_signal_length=a_len)
            loss = model.loss(log_probs=log_probs.float(), targets=tokens, input_lengths=enc_len,
                              target_lengths=t_len)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            step += 1
            batch_pos += 1
            loss_sum += loss.item() * len(t_len)  # mean_batch: per-utterance sum, batch-averaged
            tok_sum += int(t_len.sum())
            n_sum += 1
            audio_sum += float(a_len.sum()) / 16000
            if step % args.log_every == 0:
                dt = time.time() - t_log
                # Per-token loss is comparable across utterance-length settings (ln 257 = 5.55 at chance).
                log(f"step {step} epoch {epoch} loss/token {loss_sum / tok_sum:.3f} lr {lr_at(step, args):.2e} "
                    f"{dt / n_sum:.2f} s/step {audio_sum / n_sum:.0f} s audio/batch")
                loss_sum, n_sum, t_log, audio_sum, tok_sum = 0.0, 0, time.time(), 0.0, 0
            if time.time() - t_val > args.val_every_min * 60:
                run_validation()
                t_val = time.time()
            if time.time() - t_ckpt > args.ckpt_every_min * 60:
                checkpoint()
                t_ckpt = time.time()
            if step >= args.max_steps or stop:
                break
        else:
            epoch, batch_pos = epoch + 1, 0
        if stop:
            checkpoint()
            log(f"stopped by signal {stop[0]} at step {step}; checkpoint saved")
            return
    run_validation()
    checkpoint()
    log("max steps reached")


def cmd_bench(args: argparse.Namespace) -> None:
    """Seconds per training step on random audio, for sizing the architecture."""
    torch.set_num_threads(args.threads)
    model = build_model(args.config, args.run_dir / "tokenizer", encoder_overrides(args))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = int(args.batch_seconds / args.bench_utt_s)
    audio = torch.randn(n, int(args.bench_utt_s * 16000)) * 0.1
    a_len = torch.full((n,), audio.shape[1])
    tokens = torch.randint(1, 200, (n, int(args.bench_utt_s * 5)))
    t_len = torch.full((n,), tokens.shape[1])
    model.train()
    times = []
    for _ in range(args.bench_steps):
        t0 = time.time()
        log_probs, enc_len, _ = model.forward(input_signal=audio, input_signal_length=a_len)
        loss = model.loss(log_probs=log_probs, targets=tokens, input_lengths=enc_len, target_lengths=t_len)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.time() - t0)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    log(f"bench {encoder_overrides(args) or 'config'}: {params:.2f} M params, batch {n} x {args.bench_utt_s} s: "
        f"{np.median(times[1:]):.2f} s/step median, {min(times[1:]):.2f} min of {len(times) - 1} "
        "(min is the best estimate on a shared machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("init", "train", "bench"))
    ap.add_argument("--run-dir", type=Path, default=RUN_DIR, help="checkpoints/logs (env DDX_RUN_DIR)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="make_corpus.py output (env DDX_CORPUS)")
    ap.add_argument("--config", type=Path, default=HERE / "embedded_model.yaml")
    ap.add_argument("--vocab-size", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=0, help="override encoder d_model (bench/init)")
    ap.add_argument("--n-layers", type=int, default=0, help="override encoder n_layers (bench/init)")
    ap.add_argument("--train-manifest", type=Path, nargs="+", default=None)
    ap.add_argument("--val-manifest", type=Path, nargs="+", default=None)
    ap.add_argument("--val-limit", type=int, default=200)
    ap.add_argument("--min-dur", type=float, default=0.3)
    ap.add_argument("--max-dur", type=float, default=8.0)
    ap.add_argument("--subset", type=int, default=None,
                    help="train on the first N utterances only: repeating a small set escapes the CTC blank plateau")
    ap.add_argument("--init-encoder-from", type=Path, default=None,
                    help="fresh runs only: copy encoder weights from this last.pt/best.pt (any vocabulary)")
    ap.add_argument("--freeze-encoder-steps", type=int, default=0,
                    help="train only the CTC head for the first N steps (use with --init-encoder-from)")
    ap.add_argument("--synth-text", type=Path, default=None,
                    help="train on audio synthesised on the fly from these sentences (one per line) "
                         "instead of --train-manifest: a new voice and channel every epoch")
    ap.add_argument("--synth-fsdd", type=Path, default=None, help="FSDD recordings folder for --synth-text")
    ap.add_argument("--synth-fsdd-items", type=int, default=4000, help="FSDD digit strings per epoch")
    ap.add_argument("--pad-silence", type=float, default=0.5,
                    help="share of --synth-text items given 0-2.5 s of silence before and 0-1 s after")
    ap.add_argument("--join", type=float, default=0.0,
                    help="share of --synth-text sentences read together with a second one after a 0.4-2 s pause")
    ap.add_argument("--band-noise", type=float, default=0.0,
                    help="share of --synth-text items given noise in one random band (augment.band_noise)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (GPU)")
    ap.add_argument("--mask-value", type=float, default=-10.5,
                    help="SpecAugment fill: the mean log-mel of training audio (measured -10.5)")
    ap.add_argument("--no-spec-augment", action="store_true", help="disable SpecAugment (bootstrap phase)")
    ap.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch")
    ap.add_argument("--max-batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--decay-start", type=int, default=10**9, help="step where cosine decay begins")
    ap.add_argument("--decay-steps", type=int, default=3000)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--val-every-min", type=float, default=15.0)
    ap.add_argument("--ckpt-every-min", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cpu", action="store_true", help="ignore CUDA even if present")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--bench-utt-s", type=float, default=4.0)
    ap.add_argument("--bench-steps", type=int, default=4)
    args = ap.parse_args()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    args.train_manifest = args.train_manifest or [args.corpus / "train.jsonl"]
    args.val_manifest = args.val_manifest or [args.corpus / "val.jsonl"]
    {"init": cmd_init, "train": cmd_train, "bench": cmd_bench}[args.command](args)


if __name__ == "__main__":
    main()
