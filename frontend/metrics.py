"""Prometheus metrics of one server process, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters an operator of a high-concurrency ingest watches."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions_active = Gauge(
            "ddx_stt_sessions_active", "Open WebSocket sessions.", registry=self.registry
        )
        self.sessions_total = Counter(
            "ddx_stt_sessions_total", "WebSocket sessions accepted.", registry=self.registry
        )
        self.handshake_rejections = Counter(
            "ddx_stt_handshake_rejections_total", "Handshakes refused before accept.", ["status"],
            registry=self.registry,
        )
        self.closes = Counter(
            "ddx_stt_closes_total", "Sessions closed by the server, by close code and reason.",
            ["code", "reason"], registry=self.registry,
        )
        self.audio_seconds = Counter(
            "ddx_stt_audio_seconds_total", "Seconds of audio received.", registry=self.registry
        )
        self.frames_sent = Counter(
            "ddx_stt_frames_sent_total", "Frames sent to clients, by type.", ["type"], registry=self.registry
        )
        self.triton_sequences_open = Gauge(
            "ddx_stt_triton_sequences_open", "Triton sequences started and not yet ended.", registry=self.registry
        )
        self.chunk_latency = Histogram(
            "ddx_stt_chunk_latency_seconds", "Triton round trip of one audio chunk.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry,
        )
        self.event_loop_lag = Histogram(
            "ddx_stt_event_loop_lag_seconds",
            "How late a 100 ms timer of the event loop fires: how long one task held the loop, "
            "which every other connection waited out.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0), registry=self.registry,
        )
        self.callbacks = Counter(
            "ddx_stt_callbacks_total", "Pre-recorded results sent to a callback URL, by outcome "
            "(delivered, rejected: a 4xx, failed: every attempt failed).", ["outcome"], registry=self.registry,
        )
        self.triton_errors = Counter(
            "ddx_stt_triton_errors_total", "Triton sequences that failed.", registry=self.registry
        )
