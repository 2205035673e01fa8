"""Streaming log-mel features equal to NeMo's offline preprocessor, in numpy only.

NeMo's ``FilterbankFeatures`` (with ``normalize: NA``, ``exact_pad: false``) computes, for an
utterance of L samples: pre-emphasis ``y[0] = x[0], y[n] = x[n] - a*x[n-1]``; a centred STFT
(``n_fft//2`` zeros on both sides, window of ``win_length`` centred in ``n_fft``); power;
mel filterbank; ``log(x + guard)``; and keeps ``L // hop`` frames. Frame t therefore reads
samples ``[t*hop - win/2, t*hop + win/2)`` of the utterance, so it can be computed as soon
as ``t*hop + win/2`` samples have arrived. This module computes every frame exactly once,
as early as that, so a stream cut anywhere gives the same frames as the whole utterance.

No Triton imports: the Triton model and the parity tests both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    """The preprocessor, as exported by ``scripts/export_nemo.py`` into ``features.npz``."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    preemph: float
    log_guard: float
    log_guard_type: str
    mag_power: float
    filterbank: np.ndarray  # [n_mels, n_fft // 2 + 1]
    window: np.ndarray  # [win_length]

    @classmethod
    def from_npz(cls, path: str | Path) -> MelConfig:
        """Load ``features.npz``; raises ``ValueError`` on inconsistent content."""
        with np.load(path) as z:
            cfg = cls(
                sample_rate=int(z["sample_rate"]),
                n_fft=int(z["n_fft"]),
                hop_length=int(z["hop_length"]),
                win_length=int(z["win_length"]),
                preemph=float(z["preemph"]),
                log_guard=float(z["log_guard"]),
                log_guard_type=str(z["log_guard_type"]),
                mag_power=float(z["mag_power"]),
                filterbank=np.ascontiguousarray(z["filterbank"], dtype=np.float32),
                window=np.ascontiguousarray(z["window"], dtype=np.float32),
            )
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise ``ValueError`` when the arrays do not fit the scalar settings."""
        if self.filterbank.ndim != 2 or self.filterbank.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(f"filterbank shape {self.filterbank.shape} does not fit n_fft={self.n_fft}")
        if self.window.shape != (self.win_length,) or self.win_length > self.n_fft:
            raise ValueError(f"window shape {self.window.shape} does not fit win_length={self.win_length}")
        if self.log_guard_type not in ("add", "clamp"):
            raise ValueError(f"log_guard_type {self.log_guard_type!r}")
        if self.n_fft % 2 or self.hop_length <= 0:
            raise ValueError("n_fft must be even and hop_length positive")

    @property
    def n_mels(self) -> int:
        """Mel bands per frame."""
        return int(self.filterbank.shape[0])

    @property
    def lookahead_samples(self) -> int:
        """Samples past a frame's centre that the frame reads (``win_length // 2``)."""
        return self.win_length // 2


@dataclass
class _Kernel:
    """Precomputed per-config arrays (shared by every stream of one model)."""

    reach: int  # samples of the n_fft frame that the window can touch, from its left edge
    window: np.ndarray  # [reach] window as torch.stft places it in the n_fft frame
    filterbank: np.ndarray


def _kernel(cfg: MelConfig) -> _Kernel:
    # torch.stft centres a shorter window inside the n_fft frame.
    left = (cfg.n_fft - cfg.win_length) // 2
    padded = np.zeros(cfg.n_fft, np.float32)
    padded[left : left + cfg.win_length] = cfg.window
    reach = left + cfg.win_length
    return _Kernel(reach=reach, window=padded[:reach], filterbank=cfg.filterbank)


def log_mel(cfg: MelConfig, kernel: _Kernel, padded: np.ndarray, n_frames: int) -> np.ndarray:
    """Frames ``0..n_frames-1`` of a pre-emphasised, left-padded signal: [n_mels, n_frames].

    Frame i reads ``padded[i*hop : i*hop + reach]``; samples beyond ``reach`` fall under zero
    window taps, so they need not exist.
    """
    if n_frames <= 0:
        return np.zeros((cfg.n_mels, 0), np.float32)
    hop = cfg.hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, kernel.reach), strides=(padded.strides[0] * hop, padded.strides[0]), writeable=False
    )
    # float64 FFT (numpy's) is at least as exact as torch's float32 one; the parity error
    # against NeMo is torch's rounding, far below 1e-4 in the log domain.
    spec = np.fft.rfft(frames * kernel.window, n=cfg.n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    if cfg.mag_power != 2.0:
        power = power ** (cfg.mag_power / 2.0)
    mel = kernel.filterbank @ power.astype(np.float32).T
    if cfg.log_guard_type == "add":
        return np.log(mel + np.float32(cfg.log_guard)).astype(np.float32)
    return np.log(np.maximum(mel, np.float32(cfg.log_guard))).astype(np.float32)


@dataclass
class StreamingMel:
    """Log-mel frames of one audio segment, fed in pieces of any size.

    ``push`` returns the frames that became computable; ``finish`` returns the rest of the
    segment's ``samples // hop`` frames (zero right padding, as the offline STFT) and starts a
    new segment, whose frame 0 is centred on its own first sample.
    """

    cfg: MelConfig
    _kernel: _Kernel = field(init=False, repr=False)
    _buf: np.ndarray = field(init=False, repr=False)  # pre-emphasised, from padded index _base
    _base: int = field(init=False)
    _last_sample: np.float32 = field(init=False)
    next_frame: int = field(init=False)  # frames of this segment returned so far
    samples: int = field(init=False)  # real samples of this segment

    def __post_init__(self) -> None:
        self._kernel = _kernel(self.cfg)
        self.reset()

    def reset(self) -> None:
        """Start a new segment (pre-emphasis memory cleared, left zero padding again)."""
        # The centred STFT pads n_fft // 2 zeros before the first sample.
        self._buf = np.zeros(self.cfg.n_fft // 2, np.float32)
        self._base = 0
        self._last_sample = np.float32(0.0)
        self.next_frame = 0
        self.samples = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Append samples; return the newly computable frames [n_mels, k]."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size:
            a = np.float32(self.cfg.preemph)
            y = np.empty_like(x)
            # Same float32 arithmetic as NeMo: x[n] - a * x[n-1], x[-1] = 0 at segment start.
            y[0] = x[0] - a * self._last_sample
            y[1:] = x[1:] - a * x[:-1]
            self._last_sample = x[-1]
            self._buf = np.concatenate([self._buf, y])
            self.samples += x.size
        available = self._base + self._buf.size  # padded samples received
        computable = (available - self._kernel.reach) // self.cfg.hop_length + 1
        # Never more than the offline count (samples // hop): the last frames are only final
        # once the segment ends.
        return self._take(min(computable, self.samples // self.cfg.hop_length))

    @property
    def pending_frames(self) -> int:
        """Frames of this segment's ``samples // hop`` not returned yet."""
        return self.samples // self.cfg.hop_length - self.next_frame

    def finish(self, extra_frames: int = 0) -> np.ndarray:
        """The segment's remaining frames plus ``extra_frames`` more, computed with zero right
        padding (as the offline STFT pads), then ``reset``."""
        total = self.samples // self.cfg.hop_length + extra_frames
        need = (total - 1) * self.cfg.hop_length + self._kernel.reach - self._base
        if need > self._buf.size:
            self._buf = np.concatenate([self._buf, np.zeros(need - self._buf.size, np.float32)])
        frames = self._take(total)
        self.reset()
        return frames

    def _take(self, upto: int) -> np.ndarray:
        """Compute frames ``next_frame..upto-1`` and drop samples no later frame reads."""
        n = upto - self.next_frame
        if n <= 0:
            return np.zeros((self.cfg.n_mels, 0), np.float32)
        start = self.next_frame * self.cfg.hop_length - self._base
        out = log_mel(self.cfg, self._kernel, self._buf[start:], n)
        self.next_frame = upto
        drop = self.next_frame * self.cfg.hop_length - self._base
        self._buf = self._buf[drop:]
        self._base += drop
        return out


def offline_log_mel(cfg: MelConfig, audio: np.ndarray) -> np.ndarray:
    """The whole-utterance features (what NeMo's preprocessor returns, without its padding)."""
    mel = StreamingMel(cfg)
    first = mel.push(audio)
    return np.concatenate([first, mel.finish()], axis=1)
