#!/usr/bin/env python3
"""Build the embedded model's synthetic training corpus and its evaluation splits.

Debian packages needed (install on a fresh machine with):
    apt-get install -y espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k \
        festvox-us-slt-hts fortune-mod fortunes
Python: numpy, scipy, soundfile, tqdm (all in the NeMo virtualenv).

Output (all outside git, default /work/runs/corpus):
    text/{train,val,eval}.txt            normalised sentences; val/eval never synthesised for training
    train.jsonl                          espeak-ng + flite voices, augmented, + FSDD train speakers
    val.jsonl                            val sentences x training voices, clean (model selection)
    eval_tts.jsonl                       eval sentences x training voices, clean
    eval_tts_voices.jsonl                eval sentences x held-out espeak-ng variants (never trained on), clean
    eval_festival16k.jsonl               eval sentences x Festival voices (never trained on), 16 kHz
    eval_festival8k_mulaw.jsonl          the same audio as 8 kHz mu-law wav (telephony path)
    eval_fsdd.jsonl                      FSDD speakers nicolas + theo (real speech, 8 kHz, never trained on)
    eval_tts_stream.jsonl                pairs of eval sentences, one training voice, each after a 0.4-2 s pause
    eval_festival16k_stream.jsonl        the same with the Festival voices: what a live stream looks like
Manifests are NeMo JSON lines: {"audio_filepath", "duration", "text", ...}.

Every stage skips work already on disk, so an interrupted build resumes with the same command.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import augment  # noqa: E402
from text_normalize import int_to_words, normalize  # noqa: E402

SR = augment.SR
# espeak-ng English voices (mbrola ones need the mbrola binary, absent here) x variants.
ESPEAK_VOICES = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)
ESPEAK_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "croak", "Andy", "Annie", "belinda", "david", "edward", "steph",
)
# Evaluation only: espeak-ng variants that training never uses (human-like ones; the robotic,
# whispering and effect variants are left out), read over the training accents.
ESPEAK_HELDOUT_VARIANTS = (
    "Alex", "Gene", "Jacky", "Lee", "Mike", "adam", "aunty", "benjamin", "boris", "caleb", "ed",
    "grandma", "grandpa", "iven", "john", "linda", "max", "norbert", "paul", "quincy", "rob",
    "robert", "shelby", "travis", "victor", "zac",
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# Evaluation only: these voices must never reach train.jsonl.
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FSDD_TRAIN_SPEAKERS = ("george", "jackson", "lucas", "yweweler")
FSDD_EVAL_SPEAKERS = ("nicolas", "theo")
FSDD_STRING_LENGTHS = (1, 1, 2, 3, 4, 5)
"""Digits per FSDD training item, drawn uniformly from this (a third are single digits)."""
DIGITS = [int_to_words(i) for i in range(10)]


# ---------------------------------------------------------------- text


def _sentences(paragraph: str) -> Iterator[str]:
    for s in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
        yield s


def apt_descriptions() -> Iterator[str]:
    """Long package descriptions: varied technical English, one paragraph per ' .' line."""
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True).stdout
    para: list[str] = []
    for line in out.splitlines():
        if line.startswith("Description:"):
            para = [line.split(":", 1)[1]]
        elif line.startswith(" ") and para:
            if line.strip() == ".":
                yield from _sentences(" ".join(para))
                para = []
            else:
                para.append(line.strip().lstrip("*-+o ").strip())
        elif para:
            yield from _sentences(" ".join(para))
            para = []


def fortunes(root: Path) -> Iterator[str]:
    """Quotes and jokes: conversational English unlike package descriptions."""
    if not root.is_dir():
        return
    for f in sorted(root.iterdir()):
        if f.is_file() and "." not in f.name:
            for entry in f.read_text(errors="ignore").split("\n%\n"):
                yield from _sentences(entry)


def doc_prose(root: Path, max_files: int) -> Iterator[str]:
    """README-type files under /usr/share/doc; code-like lines are filtered later."""
    files = sorted(p for p in root.glob("*/README*") if p.is_file())[:max_files]
    for p in files:
        try:
            raw = gzip.open(p, "rt", errors="ignore").read() if p.suffix == ".gz" else p.read_text(errors="ignore")
        except (OSError, EOFError):
            continue
        for para in re.split(r"\n\s*\n", raw):
            yield from _sentences(para)


def looks_like_prose(raw: str) -> bool:
    letters = sum(c.isalpha() or c.isspace() for c in raw)
    return len(raw) > 0 and letters / len(raw) > 0.85 and "http" not in raw and "/" not in raw


def digit_sentences(rng: random.Random, n: int) -> list[str]:
    """Spoken digit strings (phone numbers, codes): the service's telephony users say these."""
    frames = ("", "my number is ", "the code is ", "call ", "extension ", "account number ", "it's ")
    return [
        rng.choice(frames) + " ".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 10)))
        for _ in range(n)
    ]


def build_text(out: Path, n_val: int, n_eval: int, max_doc_files: int, seed: int) -> None:
    text_dir = out / "text"
    if (text_dir / "train.txt").exists():
        return
    text_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    sents: list[str] = []
    sources: Iterable[str] = (
        s
        for src in (apt_descriptions(), fortunes(Path("/usr/share/games/fortunes")),
                    doc_prose(Path("/usr/share/doc"), max_doc_files))
        for s in src
    )
    for raw in tqdm(sources, desc="text", unit=" sent"):
        if not looks_like_prose(raw):
            continue
        s = normalize(raw)
        words = s.split()
        # 4-22 words is about 1.5-8 s of speech: short batches keep CPU steps fast.
        if not 4 <= len(words) <= 22 or max(len(w) for w in words) > 18 or s in seen:
            continue
        seen.add(s)
        sents.append(s)
    rng = random.Random(seed)
    rng.shuffle(sents)
    # Held-out sentences come first; training never sees these strings.
    val, ev, train = sents[:n_val], sents[n_val : n_val + n_eval], sents[n_val + n_eval :]
    train += digit_sentences(rng, len(train) // 20)
    rng.shuffle(train)
    for name, items in (("train", train), ("val", val), ("eval", ev)):
        (text_dir / f"{name}.txt").write_text("\n".join(items) + "\n")
    print(f"text: {len(train)} train, {len(val)} val, {len(ev)} eval sentences", flush=True)


# ---------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class Job:
    idx: int
    text: str
    engine: str  # espeak | flite | festival | fsdd
    voice: str
    wav_out: str
    augment: bool
    seed: int
    out_sr: int = SR
    mulaw: bool = False
    fsdd_files: tuple[str, ...] = ()
    # A TTS job whose `text` joins these sentences: one voice reads them in turn with pauses in
    # between, as a live stream carries several utterances.
    parts: tuple[str, ...] = ()

    PAUSE_S = (0.4, 2.0)


def _synth_tts(job: Job, rng: np.random.Generator, tmp: str) -> tuple[np.ndarray, int]:
    if job.parts:
        # A stream opens with a pause too. Pauses are a room's noise floor 50-70 dB under the
        # speech's peak, not digital zeros, which no microphone sends.
        pauses = rng.uniform(*Job.PAUSE_S, size=len(job.parts))
        floor_db = rng.uniform(50, 70)
        # Every part is read at the same rate and pitch (the same rng state): one talker.
        state = rng.bit_generator.state
        spoken = []
        for part in job.parts:
            rng.bit_generator.state = state
            audio, sr = _synth_tts(replace(job, text=part, parts=()), rng, tmp)
            spoken.append(audio)
        floor = max(float(np.max(np.abs(a))) for a in spoken) * 10 ** (-floor_db / 20)
        pieces = [x for pause, audio in zip(pauses, spoken)
                  for x in (augment.coloured_noise(int(sr * pause), rng) * floor, audio)]
        return np.concatenate(pieces).astype(np.float32), sr
    raw = os.path.join(tmp, f"{job.idx}.wav")
    if job.engine == "espeak":
        # Speaking rate and pitch are the TTS-side speed/pitch perturbation.
        cmd = ["espeak-ng", "-v", job.voice, "-s", str(rng.integers(130, 200)),
               "-p", str(rng.integers(25, 75)), "-w", raw, job.text]
    elif job.engine == "flite":
        cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={rng.uniform(0.85, 1.25):.2f}",
               "--setf", f"int_f0_target_mean={rng.integers(85, 170)}", "-t", job.text, "-o", raw]
    else:  # festival
        txt = os.path.join(tmp, f"{job.idx}.txt")
        Path(txt).write_text(job.text + "\n")
        cmd = ["text2wave", "-eval", f"(voice_{job.voice})", txt, "-o", raw]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    audio, sr = sf.read(raw, dtype="float32", always_2d=True)
    os.remove(raw)
    return audio[:, 0], sr


def _fsdd_concat(job: Job, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Real-speaker digit strings: single FSDD takes joined by short pauses."""
    pieces: list[np.ndarray] = []
    for f in job.fsdd_files:
        a, sr = sf.read(f, dtype="float32", always_2d=True)
        pieces += [a[:, 0], np.zeros(int(sr * rng.uniform(0.03, 0.3)), np.float32)]
    lead = np.zeros(int(8000 * rng.uniform(0.0, 0.3)), np.float32)
    return np.concatenate([lead, *pieces]), 8000


def synthesize(job: Job) -> np.ndarray | None:
    """The job's audio at `job.out_sr`, clipped to [-1, 1]; None when the engine failed.
    Deterministic in `job.seed`, so a corpus file can be rebuilt anywhere the engines run."""
    rng = np.random.default_rng(job.seed)
    try:
        with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
            audio, sr = _fsdd_concat(job, rng) if job.engine == "fsdd" else _synth_tts(job, rng, tmp)
    except (subprocess.SubprocessError, RuntimeError, OSError) as e:
        print(f"skip {job.engine}/{job.voice} #{job.idx}: {e}", file=sys.stderr)
        return None
    audio = augment.resample(audio, sr, SR)
    if job.augment:
        audio = augment.random_chain(audio, rng)
    else:
        audio = augment.peak_normalise(audio, 0.7)
    if job.mulaw:
        audio = augment.resample(augment.band_limit(audio, 300.0, 3400.0), SR, job.out_sr)
    return np.clip(audio, -1, 1)


def run_job(job: Job) -> dict | None:
    audio = synthesize(job)
    if audio is None:
        return None
    sf.write(job.wav_out, audio, job.out_sr, subtype="ULAW" if job.mulaw else "PCM_16")
    return {"audio_filepath": job.wav_out, "duration": round(len(audio) / job.out_sr, 3),
            "text": job.text, "voice": f"{job.engine}/{job.voice}"}


def run_jobs(jobs: list[Job], manifest: Path, workers: int, desc: str, max_dur: float = 1e9) -> None:
    """Synthesise `jobs` into `manifest`; appends so that an interrupted run resumes."""
    done = set()
    if manifest.exists():
        # A killed build can leave a torn last line: keep only complete records.
        lines = [ln for ln in manifest.read_text().splitlines() if ln.endswith("}")]
        manifest.write_text("".join(ln + "\n" for ln in lines))
        done = {json.loads(ln)["audio_filepath"] for ln in lines}
    todo = [j for j in jobs if j.wav_out not in done]
    if not todo:
        return
    for d in {Path(j.wav_out).parent for j in todo}:
        d.mkdir(parents=True, exist_ok=True)
    audio_s = 0.0
    with Pool(workers) as pool, manifest.open("a") as mf:
        bar = tqdm(pool.imap_unordered(run_job, todo, chunksize=8), total=len(todo), desc=desc, unit=" utt")
        for rec in bar:
            if rec is None or rec["duration"] > max_dur:
                continue
            mf.write(json.dumps(rec) + "\n")
            audio_s += rec["duration"]
            bar.set_postfix(hours=f"{audio_s / 3600:.2f}")


def training_voice(rng: random.Random) -> tuple[str, str]:
    # espeak-ng has far more distinct voices; flite adds more natural prosody, so ~1/3 flite.
    if rng.random() < 0.35:
        return "flite", rng.choice(FLITE_VOICES)
    variant = rng.choice(ESPEAK_VARIANTS)
    return "espeak", rng.choice(ESPEAK_VOICES) + (f"+{variant}" if variant else "")


def fsdd_files(root: Path, speakers: Iterable[str]) -> list[Path]:
    return sorted(p for s in speakers for p in root.glob(f"*_{s}_*.wav"))


def fsdd_text(p: Path) -> str:
    return DIGITS[int(p.name.split("_")[0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("DDX_CORPUS", "/work/runs/corpus")))
    ap.add_argument("--hours", type=float, default=12.0, help="target hours of TTS training audio")
    ap.add_argument("--avg-utt-s", type=float, default=3.6, help="measured mean utterance length, sizes the job list")
    ap.add_argument("--fsdd", type=Path, default=Path("/work/shared/data/fsdd/recordings"))
    ap.add_argument("--fsdd-train-items", type=int, default=4000, help="FSDD digit strings in train.jsonl")
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-eval", type=int, default=400)
    ap.add_argument("--max-doc-files", type=int, default=3000)
    ap.add_argument("--max-dur", type=float, default=10.0, help="drop longer training utterances")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--text-only", action="store_true", help="stop after writing text/*.txt")
    args = ap.parse_args()

    out: Path = args.out.resolve()
    build_text(out, args.n_val, args.n_eval, args.max_doc_files, args.seed)
    if args.text_only:
        return
    rng = random.Random(args.seed)
    read = lambda name: (out / "text" / f"{name}.txt").read_text().split("\n")[:-1]  # noqa: E731
    train_txt, val_txt, eval_txt = read("train"), read("val"), read("eval")

    def tts_jobs(texts: list[str], split: str, aug: bool, seed0: int) -> list[Job]:
        jobs = []
        for i, t in enumerate(texts):
            engine, voice = training_voice(rng)
            jobs.append(Job(i, t, engine, voice, str(out / split / f"{i:06d}.wav"), aug, seed0 + i))
        return jobs

    # Small held-out splits first: they are what every later number is measured on.
    run_jobs(tts_jobs(val_txt, "val", False, 10**6), out / "val.jsonl", args.workers, "val")
    run_jobs(tts_jobs(eval_txt, "eval_tts", False, 2 * 10**6), out / "eval_tts.jsonl", args.workers, "eval_tts")
    held = random.Random(args.seed + 2)  # its own stream: adding this set moved no other file
    heldout = [Job(i, t, "espeak", f"{held.choice(ESPEAK_VOICES)}+{held.choice(ESPEAK_HELDOUT_VARIANTS)}",
                   str(out / "eval_tts_voices" / f"{i:06d}.wav"), False, 4 * 10**6 + i)
               for i, t in enumerate(eval_txt)]
    run_jobs(heldout, out / "eval_tts_voices.jsonl", args.workers, "eval_tts_voices")
    fest = [Job(i, t, "festival", FESTIVAL_VOICES[i % len(FESTIVAL_VOICES)],
                str(out / "eval_festival16k" / f"{i:06d}.wav"), False, 3 * 10**6 + i)
            for i, t in enumerate(eval_txt)]
    run_jobs(fest, out / "eval_festival16k.jsonl", args.workers, "eval_festival16k")
    fest8 = [Job(j.idx, j.text, j.engine, j.voice, str(out / "eval_festival8k_mulaw" / f"{j.idx:06d}.wav"),
                 False, j.seed, out_sr=8000, mulaw=True) for j in fest]
    run_jobs(fest8, out / "eval_festival8k_mulaw.jsonl", args.workers, "eval_festival8k_mulaw")
    # Live streams: a pause, a sentence, a pause, the next sentence, one talker. Sentences that
    # start at their first phoneme hid a model that could not take silence before speech.
    pairs = list(zip(eval_txt[0::2], eval_txt[1::2]))
    srng = random.Random(args.seed + 3)
    for split, seed0, voice in (
            ("eval_tts_stream", 6 * 10**6, lambda k: training_voice(srng)),
            ("eval_festival16k_stream", 7 * 10**6, lambda k: ("festival", FESTIVAL_VOICES[k % len(FESTIVAL_VOICES)]))):
        jobs = [Job(k, " ".join(pair), *voice(k), str(out / split / f"{k:06d}.wav"), False, seed0 + k, parts=pair)
                for k, pair in enumerate(pairs)]
        run_jobs(jobs, out / f"{split}.jsonl", args.workers, split)
    eval_fsdd = out / "eval_fsdd.jsonl"
    if not eval_fsdd.exists():
        with eval_fsdd.open("w") as f:  # original 8 kHz files: loaders resample, as the service does
            for p in fsdd_files(args.fsdd, FSDD_EVAL_SPEAKERS):
                f.write(json.dumps({"audio_filepath": str(p), "duration": round(sf.info(str(p)).duration, 3),
                                    "text": fsdd_text(p), "voice": "fsdd/" + p.name.split("_")[1]}) + "\n")

    n_tts = min(len(train_txt), int(args.hours * 3600 / args.avg_utt_s))
    train_jobs = tts_jobs(train_txt[:n_tts], "train", True, 0)
    pool = fsdd_files(args.fsdd, FSDD_TRAIN_SPEAKERS)
    frng = random.Random(args.seed + 1)  # independent of --hours, so FSDD items stay stable
    for k in range(args.fsdd_train_items):
        spk = frng.choice(FSDD_TRAIN_SPEAKERS)
        files = frng.sample([p for p in pool if f"_{spk}_" in p.name], frng.choice(FSDD_STRING_LENGTHS))
        # Own folder and numbering: growing --hours later must not rename these.
        train_jobs.append(Job(k, " ".join(fsdd_text(p) for p in files), "fsdd", spk,
                              str(out / "train_fsdd" / f"{k:06d}.wav"), True, 5 * 10**6 + k,
                              fsdd_files=tuple(map(str, files))))
    run_jobs(train_jobs, out / "train.jsonl", args.workers, "train", args.max_dur)


if __name__ == "__main__":
    main()
