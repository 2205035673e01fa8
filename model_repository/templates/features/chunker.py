"""Cut a stream's log-mel frames into the windows the exported encoder takes.

Each window is ``left_frames`` of left context, ``chunk_frames`` new frames and ``right_frames``
of right context; the encoder returns ``chunk_frames / subsampling`` encoder frames for it.

* Cache-aware encoders read ``pre_encode_cache_size`` frames of left context and no right
  context. Before the first chunk the left context is ``fill`` (zeros: what NeMo's
  ``pad_and_drop_preencoded`` streaming and the causal subsampling convolutions see before an
  utterance). Each segment also starts with ``lead_frames`` fill frames (subsampling - 1, the
  difference of NeMo's two streaming chunk sizes): the first chunk then carries
  ``chunk_frames - lead_frames`` real frames, so that encoder frame k ends on mel frame
  k * subsampling and chunks fall on the attention-chunk boundaries of the offline forward the
  model was trained with. Without the lead every output is one mel frame early and in
  different attention chunks: a trained model's log-probs move by several nats.
* Buffered (offline) encoders read seconds of context on both sides and keep the chunk's own
  frames. A chunk's window is only complete once its right context has arrived, so every
  result waits for it. Before the stream's first frame the left context is ``fill`` (the
  features of digital silence, as in NeMo's buffered inference); with ``normalize``
  ``per_feature`` every window is normalised on its own, as NeMo's ``FeatureFrameBufferer``
  normalises each buffer.

A FLUSH pads the stream with zero audio (as the offline STFT pads the end of an utterance) to
whole chunks plus their right context, emits them, and starts a new feature segment (frame 0
centred on the next sample) while the encoder context (caches, or the left context frames)
carries on. Time is counted in real samples only: the padding never moves the clock, and
encoder frames past the real audio are not "valid".

No Triton imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from streaming_mel import MelConfig, StreamingMel


NORMALIZATIONS = ("none", "per_feature")
# NeMo's FeatureFrameBufferer: (x - mean) / (std + 1e-5), population std.
NORMALIZE_EPS = 1e-5


@dataclass(frozen=True)
class ChunkGeometry:
    """Encoder input geometry of one look-ahead profile."""

    chunk_frames: int  # new mel frames per chunk
    left_frames: int  # mel frames of left context prepended to each chunk
    subsampling: int  # mel frames per encoder frame
    fill: float = 0.0  # value of the left context before the first chunk
    right_frames: int = 0  # mel frames of right context appended to each chunk (buffered)
    normalize: str = "none"  # "per_feature": each window by its own per-band mean and std
    lead_frames: int = 0  # fill frames before each segment's first real frame (cache-aware)

    def __post_init__(self) -> None:
        if self.chunk_frames <= 0 or self.chunk_frames % self.subsampling:
            raise ValueError(f"chunk_frames={self.chunk_frames} is not a multiple of {self.subsampling}")
        if self.left_frames < 0 or self.right_frames < 0:
            raise ValueError("context frames must not be negative")
        if not 0 <= self.lead_frames < self.chunk_frames:
            raise ValueError(f"lead_frames={self.lead_frames} outside 0..{self.chunk_frames - 1}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize={self.normalize!r}: one of {NORMALIZATIONS}")

    @property
    def encoder_frames(self) -> int:
        """Encoder frames per chunk."""
        return self.chunk_frames // self.subsampling

    @property
    def window(self) -> int:
        """Mel frames of one encoder input (context + chunk + context)."""
        return self.left_frames + self.chunk_frames + self.right_frames

    @property
    def ready_frames(self) -> int:
        """Mel frames from a chunk's start that must exist before its window can be cut."""
        return self.chunk_frames + self.right_frames


@dataclass(frozen=True)
class Chunks:
    """What one request produced."""

    features: np.ndarray  # [k, n_mels, window], k >= 0
    start_s: float  # stream time (real audio) of encoder frame 0 of these chunks
    valid_frames: int  # encoder frames that cover real audio (k * encoder_frames unless flushed)


@dataclass
class FeatureStream:
    """Per-sequence front end: samples in, encoder-ready chunks out."""

    mel_cfg: MelConfig
    geometry: ChunkGeometry
    mel: StreamingMel = field(init=False)
    _fifo: np.ndarray = field(init=False, repr=False)  # computed frames from the next chunk's start
    _context: np.ndarray = field(init=False, repr=False)  # the left_frames frames before it
    _segment_offset: int = field(init=False, default=0)  # real samples before this segment
    _segment_sent: int = field(init=False, default=0)  # mel frames of this segment chunked

    def __post_init__(self) -> None:
        self.mel = StreamingMel(self.mel_cfg)
        n_mels = self.mel_cfg.n_mels
        self._fifo = self._lead()
        self._context = np.full((n_mels, self.geometry.left_frames), self.geometry.fill, np.float32)

    def _lead(self) -> np.ndarray:
        """A segment's fifo before its first sample: the lead fill frames."""
        return np.full((self.mel_cfg.n_mels, self.geometry.lead_frames), self.geometry.fill, np.float32)

    def process(self, audio: np.ndarray, flush: bool) -> Chunks:
        """Feed samples (possibly none); with ``flush`` also finish the segment."""
        g = self.geometry
        hop = self.mel_cfg.hop_length
        start_s = (self._segment_offset + self._segment_sent * hop) / self.mel_cfg.sample_rate
        self._fifo = np.concatenate([self._fifo, self.mel.push(audio)], axis=1)
        segment_samples = self.mel.samples
        # Frames this request will decode when it flushes (the lead frames included while the
        # segment's first chunk is still ahead), and how many of them are real audio.
        waiting = self._fifo.shape[1] + self.mel.pending_frames
        real = waiting - (g.lead_frames if self._segment_sent == 0 else 0)
        if flush:
            # Zero padding up to whole chunks and the last one's right context, computed by the
            # extractor: the frames just past the audio still hold its tail, as the offline
            # STFT's would.
            pad = -(-waiting // g.chunk_frames) * g.chunk_frames + g.right_frames - waiting if real else 0
            self._fifo = np.concatenate([self._fifo, self.mel.finish(extra_frames=pad)], axis=1)
        k = max(0, (self._fifo.shape[1] - g.right_frames) // g.chunk_frames)
        out = np.empty((k, self.mel_cfg.n_mels, g.window), np.float32)
        for i in range(k):
            start = i * g.chunk_frames
            out[i, :, : g.left_frames] = self._context
            out[i, :, g.left_frames :] = self._fifo[:, start : start + g.ready_frames]
            joined = np.concatenate([self._context, self._fifo[:, start : start + g.chunk_frames]], axis=1)
            self._context = joined[:, joined.shape[1] - g.left_frames :]
        if g.normalize == "per_feature":
            normalize_windows(out)
        # After a FLUSH only padding is left (the right context of the last chunk).
        self._fifo = self._lead() if flush else self._fifo[:, k * g.chunk_frames :]
        if flush:
            self._segment_offset += segment_samples
            self._segment_sent = 0
            # An encoder frame is real when its newest mel frame is: with lead frames, frame k of
            # the segment ends on fifo frame k * subsampling + lead_frames (k * subsampling
            # without). Without lead a partly real frame counts (its first frame is real).
            valid = max(0, -(-(waiting - g.lead_frames) // g.subsampling))
        else:
            self._segment_sent += k * g.chunk_frames
            valid = k * g.encoder_frames
        return Chunks(features=out, start_s=start_s, valid_frames=valid)


def normalize_windows(windows: np.ndarray) -> None:
    """Normalise every band of every window [k, n_mels, frames] by the window's own mean and
    standard deviation, in place (float32, as NeMo's buffered inference does in numpy)."""
    mean = windows.mean(axis=2, keepdims=True)
    std = windows.std(axis=2, keepdims=True)
    windows -= mean
    windows /= std + np.float32(NORMALIZE_EPS)
