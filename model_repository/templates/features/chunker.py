"""Cut a stream's log-mel frames into the chunks the exported cache-aware encoder takes.

The exported encoder reads ``pre_encode_cache_size`` mel frames of left context followed by
``chunk_frames`` new frames, and returns ``chunk_frames / subsampling`` encoder frames. Before
the first chunk the left context is ``fill`` (zeros: what NeMo's ``pad_and_drop_preencoded``
streaming and the causal subsampling convolutions see before an utterance).

A FLUSH pads the stream to a whole chunk (zero audio, as the offline STFT pads the end of an
utterance), emits it, and starts a new feature segment (frame 0 centred on the next sample)
while the encoder context carries on. Time is counted in real samples only: the padding of
a flushed chunk never moves the clock, and its frames past the real audio are not "valid".

No Triton imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from streaming_mel import MelConfig, StreamingMel


@dataclass(frozen=True)
class ChunkGeometry:
    """Encoder input geometry of one look-ahead profile."""

    chunk_frames: int  # new mel frames per chunk
    pre_encode_frames: int  # mel frames of left context prepended to each chunk
    subsampling: int  # mel frames per encoder frame
    fill: float = 0.0  # value of the left context before the first chunk

    def __post_init__(self) -> None:
        if self.chunk_frames <= 0 or self.chunk_frames % self.subsampling:
            raise ValueError(f"chunk_frames={self.chunk_frames} is not a multiple of {self.subsampling}")

    @property
    def encoder_frames(self) -> int:
        """Encoder frames per chunk."""
        return self.chunk_frames // self.subsampling

    @property
    def window(self) -> int:
        """Mel frames of one encoder input (context + chunk)."""
        return self.pre_encode_frames + self.chunk_frames


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
    _fifo: np.ndarray = field(init=False, repr=False)  # computed frames not yet chunked
    _context: np.ndarray = field(init=False, repr=False)  # last pre_encode_frames frames sent
    _segment_offset: int = field(init=False, default=0)  # real samples before this segment
    _segment_sent: int = field(init=False, default=0)  # mel frames of this segment chunked

    def __post_init__(self) -> None:
        self.mel = StreamingMel(self.mel_cfg)
        n_mels = self.mel_cfg.n_mels
        self._fifo = np.zeros((n_mels, 0), np.float32)
        self._context = np.full((n_mels, self.geometry.pre_encode_frames), self.geometry.fill, np.float32)

    def process(self, audio: np.ndarray, flush: bool) -> Chunks:
        """Feed samples (possibly none); with ``flush`` also finish the segment."""
        g = self.geometry
        hop = self.mel_cfg.hop_length
        start_s = (self._segment_offset + self._segment_sent * hop) / self.mel_cfg.sample_rate
        self._fifo = np.concatenate([self._fifo, self.mel.push(audio)], axis=1)
        segment_samples = self.mel.samples
        # Frames of real audio this request will decode when it flushes.
        real = self._fifo.shape[1] + self.mel.pending_frames
        if flush:
            # Zero padding up to a whole chunk, computed by the extractor: the frames just
            # past the audio still hold its tail, as the offline STFT's would.
            pad = -real % g.chunk_frames
            self._fifo = np.concatenate([self._fifo, self.mel.finish(extra_frames=pad)], axis=1)
        k = self._fifo.shape[1] // g.chunk_frames
        out = np.empty((k, self.mel_cfg.n_mels, g.window), np.float32)
        for i in range(k):
            new = self._fifo[:, i * g.chunk_frames : (i + 1) * g.chunk_frames]
            out[i, :, : g.pre_encode_frames] = self._context
            out[i, :, g.pre_encode_frames :] = new
            joined = np.concatenate([self._context, new], axis=1)
            self._context = joined[:, joined.shape[1] - g.pre_encode_frames :]
        self._fifo = self._fifo[:, k * g.chunk_frames :]
        if flush:
            self._segment_offset += segment_samples
            self._segment_sent = 0
            valid = -(-real // g.subsampling)  # ceil: a partly real encoder frame is real
        else:
            self._segment_sent += k * g.chunk_frames
            valid = k * g.encoder_frames
        return Chunks(features=out, start_s=start_s, valid_frames=valid)
