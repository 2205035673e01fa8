"""The NeMo side of the parity tests, run by ``.venv-nemo/bin/python`` (torch and NeMo never
enter the serving environment).

``build OUT.nemo [make_random_model.py options]``
    A small random-weight cache-aware FastConformer (``scripts/make_random_model.py``) whose
    output biases are then calibrated on fixture speech: every class gets the same mean logit
    and the blank wins about half of the frames (CTC head, and the RNNT joint at its start
    symbol). Uncalibrated, a random head picks the same token at nearly every frame (a random
    joint emits ``max_symbols`` of them per frame), which would leave the decoders' collapse,
    frame loop and state untested. ``max_symbols`` drops to 3 so that the cap is reached now
    and then.

``stream MODEL.nemo AUDIO.npz OUT.npz``
    NeMo's own cache-aware streaming of every stream ``<profile>/<name>`` in ``AUDIO.npz``
    (arrays ``<profile>/<name>/<segment>``: segments of whole chunks, a FLUSH between two), for
    every head of the model: ``CacheAwareStreamingAudioBuffer`` with
    ``pad_and_drop_preencoded=True`` (the first chunk gets a zero pre-encode context and drops
    the extra pre-encoded frames like every later chunk, as the exported graph does) feeding
    ``conformer_stream_step``. Writes, under ``<head>/<profile>/<name>/``: ``rows`` (per
    encoder frame: CTC log-probs, or the encoder output that the RNNT joint reads),
    ``tokens`` and ``token_frames`` (NeMo's greedy result, frames counted from the start).

``buffered MODEL.nemo MANIFEST.json AUDIO.npz OUT.npz``
    NeMo computing the buffered windows that the service serves an offline model with (the
    geometry, fill and normalisation of the manifest's one profile, ``buffer``), for every head:
    NeMo's preprocessor (normalisation off) over each segment and its zero padding, windows of
    left context + chunk + right context (left context kept across a FLUSH, as the service
    does), each normalised by NeMo's own ``FeatureFrameBufferer`` code for ``per_feature``
    models, NeMo's encoder (and CTC head) on each window, the chunk's middle rows kept. Greedy
    decoding over each segment's middle rows (NeMo's RNNT greedy decoder; CTC collapse), as for
    ``stream``. Also ``offline/<name>/<segment>``: NeMo's own full-utterance CTC log-probs of
    each segment (``model.forward``, the preprocessor's normalisation on), what buffering
    approximates.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "fixtures" / "speaker_a.wav"
TEST_MAX_SYMBOLS = 3


def build(out: Path, options: list[str]) -> None:
    """A random model as make_random_model.py builds it, with a calibrated RNNT blank."""
    sys.path.insert(0, str(REPO / "scripts"))
    import make_random_model

    args = make_random_model.parse_args(["--out", str(out), *options])
    tokenizer = args.tokenizer or make_random_model.train_tokenizer(
        args.tokenizer_out or out.parent / f"tokenizer_spe_bpe_v{args.vocab_size}", args.vocab_size, args.max_sentences
    )
    model = make_random_model.build_model(args, tokenizer)
    calibrate(model)
    model.save_to(str(out))


def _speech() -> torch.Tensor:
    with wave.open(str(SPEECH)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]


def _center(bias: torch.Tensor, logits: torch.Tensor) -> None:
    """Shift ``bias`` so that every class of ``logits`` [frames, classes] has the same mean and
    the blank (last class) beats the best other class on half of the frames."""
    centered = logits - logits.mean(dim=0)
    margin = centered[:, :-1].max(dim=-1).values - centered[:, -1]
    bias -= logits.mean(dim=0)
    bias[-1] += margin.median()


def calibrate(model: Any) -> None:
    """Calibrate the output biases of every head on fixture speech (see the module doc)."""
    from omegaconf import open_dict

    audio = _speech()
    with torch.no_grad():
        feats, length = model.preprocessor(input_signal=audio, length=torch.tensor([audio.shape[1]]))
        encoded, _ = model.encoder(audio_signal=feats, length=length)
        ctc = getattr(model, "ctc_decoder", None) or (model.decoder if not hasattr(model, "joint") else None)
        if ctc is not None:
            conv = ctc.decoder_layers[0]
            _center(conv.bias, conv(encoded)[0].T)
        if hasattr(model, "joint"):
            g, _ = model.decoder.predict(None, state=None, add_sos=False, batch_size=1)
            logits = model.joint.joint(encoded.transpose(1, 2), g)[0, :, 0, :]
            _center(model.joint.joint_net[-1].bias, logits)
    if hasattr(model, "joint"):
        decoding = model.cfg.decoding
        with open_dict(decoding):
            decoding.greedy.max_symbols = TEST_MAX_SYMBOLS
        # Only a hybrid has two decoders to choose from.
        choice = {"decoder_type": "rnnt"} if hasattr(model, "ctc_decoder") else {}
        model.change_decoding_strategy(decoding, verbose=False, **choice)


def heads(model: Any) -> list[str]:
    if hasattr(model, "ctc_decoder"):
        return ["ctc", "rnnt"]
    return ["rnnt"] if hasattr(model, "joint") else ["ctc"]


def use_head(model: Any, head: str) -> None:
    if hasattr(model, "ctc_decoder"):
        model.change_decoding_strategy(decoder_type=head, verbose=False)


def stream_one(model: Any, segments: list[np.ndarray], head: str) -> dict[str, np.ndarray]:
    """NeMo's cache-aware streaming of one stream with the current look-ahead.

    Segments are separated by a FLUSH, as the service handles one: each segment gets its own
    features (the service's mel front end starts again after a flush) while the encoder caches
    carry on, and decoding starts again (a fresh RNNT hypothesis; the CTC collapse restarts).
    """
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    buffer = CacheAwareStreamingAudioBuffer(model, online_normalization=False, pad_and_drop_preencoded=True)
    # The preprocessor pads its output past the valid frames: keep those only. Each segment
    # starts with the service's lead frames (zeros; NeMo's two chunk sizes differ by them), so
    # that chunks line up with the offline forward's.
    cfg = model.encoder.streaming_cfg
    lead = int(cfg.chunk_size[1] - cfg.chunk_size[0]) if isinstance(cfg.chunk_size, list) else 0
    features = [
        torch.cat([torch.zeros(*f.shape[:-1], lead), f[..., : int(n[0])]], dim=-1)
        for f, n in map(buffer.preprocess_audio, segments)
    ]
    buffer.append_processed_signal(torch.cat(features, dim=-1))
    chunk_frames = cfg.chunk_size[1] if isinstance(cfg.chunk_size, list) else cfg.chunk_size
    # Chunk indices where a segment after a flush begins (segments are whole chunks).
    restarts = set(np.cumsum([f.shape[-1] // chunk_frames for f in features])[:-1].tolist())
    channel, time, channel_len = model.encoder.get_initial_cache_state(batch_size=1)
    rows: list[np.ndarray] = []
    tokens: list[int] = []
    frames: list[int] = []
    hypotheses, offset, previous = None, 0, -1

    def collect_rnnt() -> None:
        # Hypothesis timestamps count frames from the hypothesis' own start.
        if hypotheses is not None:
            tokens.extend(hypotheses[0].y_sequence.tolist())
            frames.extend(offset + int(t) for t in hypotheses[0].timestamp)

    with torch.no_grad():
        for index, (chunk, lengths) in enumerate(buffer):
            if index in restarts:
                collect_rnnt()
                hypotheses, offset, previous = None, sum(len(r) for r in rows), -1
            step = {
                "processed_signal": chunk,
                "processed_signal_length": lengths,
                "cache_last_channel": channel,
                "cache_last_time": time,
                "cache_last_channel_len": channel_len,
                "keep_all_outputs": buffer.is_buffer_empty(),
                "drop_extra_pre_encoded": cfg.drop_extra_pre_encoded,
            }
            if head == "rnnt":
                # The encoder output the joint reads (conformer_stream_step keeps it to itself).
                encoded, *_ = model.encoder.cache_aware_stream_step(**step)
                rows.append(encoded[0].T.numpy())
            out = model.conformer_stream_step(
                **step,
                previous_hypotheses=hypotheses,
                return_transcription=True,
                return_log_probs=head == "ctc",
            )
            predictions, _, channel, time, channel_len, hypotheses = out[:6]
            if head == "ctc":
                # NeMo's greedy CTC: the frame-wise argmax, repeats collapsed, blanks removed.
                start = sum(len(r) for r in rows)
                rows.append(out[6][0].numpy())
                blank = rows[-1].shape[-1] - 1
                for f, best in enumerate(predictions[0].tolist()):
                    if best != blank and best != previous:
                        tokens.append(best)
                        frames.append(start + f)
                    previous = best
    if head == "rnnt":
        collect_rnnt()
    return {
        "rows": np.concatenate(rows),
        "tokens": np.array(tokens, np.int32),
        "token_frames": np.array(frames, np.int32),
    }


def stream(model_path: Path, audio_path: Path, out_path: Path) -> None:
    """Every stream of ``audio_path`` through every head of the model (see the module doc)."""
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(model_path), map_location="cpu")
    model.eval()
    contexts = {f"la{c[1]}": list(c) for c in model.encoder.att_context_size_all}
    out: dict[str, np.ndarray] = {}
    with np.load(audio_path) as audio:
        streams: dict[str, list[np.ndarray]] = {}
        for key in sorted(audio.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
            streams.setdefault(key.rsplit("/", 1)[0], []).append(audio[key])
        for head in heads(model):
            use_head(model, head)
            for name, segments in streams.items():
                model.encoder.set_default_att_context_size(contexts[name.split("/")[0]])
                model.encoder.setup_streaming_params()
                for field, value in stream_one(model, segments, head).items():
                    out[f"{head}/{name}/{field}"] = value
    np.savez(out_path, **out)


def segment_features(model: Any, audio: np.ndarray, frames: int) -> torch.Tensor:
    """The first ``frames`` log-mel frames [n_mels, frames] of ``audio`` followed by zero padding,
    unnormalised, from NeMo's preprocessor.

    The service pads a segment after pre-emphasis (zeros in the STFT's frame, as NeMo's offline
    STFT pads an utterance's end); NeMo's preprocessor pre-emphasises what it is given, so the
    audio is extended with the tail whose pre-emphasis is exactly zero: x[n] = a * x[n-1].
    """
    fz = model.preprocessor.featurizer
    hop, a = int(fz.hop_length), np.float32(fz.preemph or 0.0)
    tail = np.empty(frames * hop + int(fz.n_fft), np.float32)
    last = np.float32(audio[-1]) if audio.size else np.float32(0.0)
    for i in range(tail.size):
        last = a * last
        tail[i] = last
    signal = torch.from_numpy(np.concatenate([audio.astype(np.float32), tail]))[None]
    normalize, fz.normalize = fz.normalize, None
    try:
        feats, _ = model.preprocessor(input_signal=signal, length=torch.tensor([signal.shape[1]]))
    finally:
        fz.normalize = normalize
    return feats[0, :, :frames]


def buffered_one(model: Any, buffer: dict[str, Any], segments: list[np.ndarray], head: str) -> dict[str, np.ndarray]:
    """One stream's buffered windows through NeMo (see the module doc)."""
    from nemo.collections.asr.parts.utils.streaming_utils import FeatureFrameBufferer

    chunk, left, right = buffer["chunk_frames"], buffer["left_frames"], buffer["right_frames"]
    sub = int(model.encoder.subsampling_factor)
    fz = model.preprocessor.featurizer
    hop = int(fz.hop_length)
    bufferer = FeatureFrameBufferer(model, frame_len=chunk * hop / fz.sample_rate, batch_size=1)
    ctc = getattr(model, "ctc_decoder", None) or (model.decoder if head == "ctc" else None)
    context = torch.full((int(fz.nfilt), left), float(buffer["fill"]))
    rows: list[np.ndarray] = []
    tokens: list[int] = []
    frames: list[int] = []
    for audio in segments:
        real = audio.size // hop
        n_chunks = -(-real // chunk)
        feats = segment_features(model, audio, n_chunks * chunk + right)
        windows = []
        for i in range(n_chunks):
            windows.append(torch.cat([context, feats[:, i * chunk : (i + 1) * chunk + right]], dim=1).numpy())
            joined = torch.cat([context, feats[:, i * chunk : (i + 1) * chunk]], dim=1)
            context = joined[:, joined.shape[1] - left :]
        if not windows:
            continue
        if buffer["normalize"] == "per_feature":
            consts = [(w.mean(axis=1)[:, None], w.std(axis=1)[:, None]) for w in windows]
            bufferer.normalize_frame_buffers(windows, consts)
        with torch.no_grad():
            batch = torch.from_numpy(np.stack(windows))
            encoded, _ = model.encoder(audio_signal=batch, length=torch.full((len(windows),), batch.shape[2]))
            middle = encoded[:, :, left // sub : (left + chunk) // sub]
            # [D, frames] of the segment: the chunks' middles one after the other.
            segment = torch.cat(list(middle), dim=1)
            start = sum(len(r) for r in rows)
            if head == "ctc":
                logp = ctc(encoder_output=segment[None])[0]
                rows.append(logp.numpy())
                previous = -1
                blank = logp.shape[-1] - 1
                for f, best in enumerate(logp.argmax(dim=-1).tolist()):
                    if best != blank and best != previous:
                        tokens.append(best)
                        frames.append(start + f)
                    previous = best
            else:
                rows.append(segment.T.numpy())
                (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(
                    encoder_output=segment[None],
                    encoded_lengths=torch.tensor([segment.shape[1]]),
                    return_hypotheses=True,
                )
                tokens.extend(hyp.y_sequence.tolist())
                frames.extend(start + int(t) for t in hyp.timestamp)
    return {
        "rows": np.concatenate(rows),
        "tokens": np.array(tokens, np.int32),
        "token_frames": np.array(frames, np.int32),
    }


def offline_logprobs(model: Any, audio: np.ndarray) -> np.ndarray:
    """NeMo's full-utterance CTC log-probs [frames, classes] (its own preprocessing)."""
    use_head(model, "ctc")
    with torch.no_grad():
        signal = torch.from_numpy(audio.astype(np.float32))[None]
        if hasattr(model, "ctc_decoder"):
            encoded, _ = model(input_signal=signal, input_signal_length=torch.tensor([signal.shape[1]]))
            return model.ctc_decoder(encoder_output=encoded)[0].numpy()
        logp, _, _ = model(input_signal=signal, input_signal_length=torch.tensor([signal.shape[1]]))
        return logp[0].numpy()


def buffered(model_path: Path, manifest_path: Path, audio_path: Path, out_path: Path) -> None:
    """Every stream of ``audio_path`` buffered through every head (see the module doc)."""
    import json

    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(model_path), map_location="cpu")
    model.eval()
    (profile,) = json.loads(manifest_path.read_text())["profiles"].values()
    out: dict[str, np.ndarray] = {}
    with np.load(audio_path) as audio:
        streams: dict[str, list[np.ndarray]] = {}
        for key in sorted(audio.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
            streams.setdefault(key.rsplit("/", 1)[0], []).append(audio[key])
            if "ctc" in heads(model):
                out[f"offline/{key}"] = offline_logprobs(model, audio[key])
        for head in heads(model):
            use_head(model, head)
            for name, segments in streams.items():
                for field, value in buffered_one(model, profile["buffer"], segments, head).items():
                    out[f"{head}/{name}/{field}"] = value
    np.savez(out_path, **out)


def main() -> None:
    """Entry point (runs in the NeMo environment)."""
    command, *rest = sys.argv[1:]
    if command == "build":
        build(Path(rest[0]), rest[1:])
    elif command == "stream":
        stream(Path(rest[0]), Path(rest[1]), Path(rest[2]))
    elif command == "buffered":
        buffered(*map(Path, rest[:4]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
