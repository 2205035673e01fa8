"""ddx-stt frontend: the Deepgram-compatible WebSocket service in front of Triton."""
