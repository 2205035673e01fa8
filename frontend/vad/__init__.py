"""Voice activity detection (Silero VAD on onnxruntime) for SpeechStarted and endpointing."""

from frontend.vad.silero import SileroVad, VadEvent

__all__ = ["SileroVad", "VadEvent"]
