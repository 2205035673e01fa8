"""Client audio decoding: any accepted encoding to float32 16 kHz, one row per channel."""

from frontend.audio.normalize import AudioNormalizer

__all__ = ["AudioNormalizer"]
