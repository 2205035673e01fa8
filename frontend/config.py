"""Service settings: one table maps each setting to its CLI flag and environment variable.

The README's configuration table is generated from `SETTINGS` (``ddx-stt config-table``), so the
documentation cannot drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One configurable value: its attribute name, flag, environment variable and parser."""

    name: str
    flag: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(item) for item in _csv(text))


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"{text!r}: one of {', '.join(options)}")
        return value

    return parse


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "--host", "DDX_STT_HOST", "0.0.0.0", str, "Address the HTTP/WebSocket server binds."),
    Setting("port", "--port", "DDX_STT_PORT", 4600, int, "Port of the HTTP/WebSocket server."),
    Setting(
        "triton_url", "--triton-url", "DDX_STT_TRITON_URL", "", str,
        "gRPC `HOST:PORT` of an external Triton. Empty: start the embedded Triton as a child process.",
    ),
    Setting(
        "model_dirs", "--model-dir", "DDX_STT_MODEL_DIRS", (REPO_ROOT / "models" / "embedded",), _paths,
        "Exported model folders (from `scripts/export_nemo.py`) served by the embedded Triton; comma list.",
    ),
    Setting(
        "repository_dir", "--repository-dir", "DDX_STT_REPOSITORY_DIR",
        REPO_ROOT / "model_repository" / "generated" / "embedded", Path,
        "Where the embedded target's model repository is generated at start.",
    ),
    Setting("triton_grpc_port", "--triton-grpc-port", "DDX_STT_TRITON_GRPC_PORT", 0, int,
            "gRPC port of the embedded Triton (0: pick a free one)."),
    Setting("triton_start_timeout_s", "--triton-start-timeout", "DDX_STT_TRITON_START_TIMEOUT_S", 180.0, float,
            "Seconds to wait for the embedded Triton and its models to become ready."),
    Setting("encoder_threads", "--encoder-threads", "DDX_STT_ENCODER_THREADS", 2, int,
            "onnxruntime intra-op threads of the embedded encoder."),
    Setting("precision", "--precision", "DDX_STT_PRECISION", "fp32", _choice("fp32", "int8", "auto"),
            "Encoder weights of the embedded target: fp32, int8 (dynamically quantised, the model folder "
            "needs export_nemo.py --int8 graphs; a stream's results then depend slightly on what it is "
            "batched with), or auto (int8 where the folder has the graphs, else fp32)."),
    Setting("head", "--head", "DDX_STT_HEAD", "auto", _choice("auto", "ctc", "rnnt"),
            "Decoder head of hybrid RNNT+CTC models in the embedded target: auto (RNNT), ctc or rnnt."),
    Setting("decoding", "--decoding", "DDX_STT_DECODING", "auto", _choice("auto", "greedy"),
            "CTC decoding in the embedded target: auto (beam search with the model's word LM when it ships "
            "one, as the embedded model does) or greedy."),
    Setting("api_keys", "--api-keys", "DDX_STT_API_KEYS", (), _csv,
            "Accepted API keys, comma list. With no keys at all any non-empty token is accepted (a warning is logged)."),
    Setting("api_key_file", "--api-key-file", "DDX_STT_API_KEY_FILE", None, _optional_path,
            "File with one accepted API key per line (`#` starts a comment)."),
    Setting("idle_timeout_s", "--idle-timeout", "DDX_STT_IDLE_TIMEOUT_S", 10.0, float,
            "Seconds without audio or a text message before close 1011 `NET-0001`."),
    Setting("finalize_timeout_s", "--finalize-timeout", "DDX_STT_FINALIZE_TIMEOUT_S", 10.0, float,
            "Longest wait for the recogniser's last results before a session closes anyway."),
    Setting("max_segment_s", "--max-segment", "DDX_STT_MAX_SEGMENT_S", 15.0, float,
            "Longest open segment: a final is cut at a word boundary even without a pause."),
    Setting("max_channels", "--audio-max-channels", "DDX_STT_AUDIO_MAX_CHANNELS", 8, int,
            "Most audio channels per stream (more: close 1008 `channels-too-many`)."),
    Setting("max_sample_rate", "--audio-max-sample-rate", "DDX_STT_AUDIO_MAX_SAMPLE_RATE", 48000, int,
            "Highest input sample rate (higher: close 1008 `sample-rate-too-high`)."),
    Setting("max_message_bytes", "--max-message-bytes", "DDX_STT_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, int,
            "Largest WebSocket message accepted from a client (larger: close 1009)."),
    Setting("max_upload_bytes", "--max-upload-bytes", "DDX_STT_MAX_UPLOAD_BYTES", 512 * 1024 * 1024, int,
            "Largest body accepted by `POST /v1/listen` (larger: HTTP 413)."),
    Setting("max_pending_chunks", "--max-pending-chunks", "DDX_STT_MAX_PENDING_CHUNKS", 8, int,
            "Chunks queued per channel toward Triton before the server stops reading the socket (backpressure)."),
    Setting("max_sessions", "--max-sessions", "DDX_STT_MAX_SESSIONS", 0, int,
            "Most sessions at once: live streams and pre-recorded requests (callbacks until sent) together. "
            "Past it: HTTP 429 `TOO_MANY_REQUESTS` with `Retry-After`, so a full server refuses new work "
            "instead of slowing every stream. 0: no limit."),
    Setting("callback_hosts", "--callback-hosts", "DDX_STT_CALLBACK_HOSTS", (), _csv,
            "Hosts (`host` or `host:port`) that a pre-recorded `callback` URL may name, comma list; `*` any. "
            "Empty: a request with `callback` gets HTTP 400 `CALLBACK_NOT_ALLOWED` (a server that calls URLs "
            "its clients choose can be turned against the network it runs in)."),
    Setting("drain_timeout_s", "--drain-timeout", "DDX_STT_DRAIN_TIMEOUT_S", 15.0, float,
            "On SIGTERM: seconds to let open sessions flush finals and close before the server stops."),
    Setting("log_level", "--log-level", "DDX_STT_LOG_LEVEL", "INFO", str, "Python log level."),
)


@dataclass(frozen=True)
class Config:
    """Resolved settings of one server process."""

    host: str = "0.0.0.0"
    port: int = 4600
    triton_url: str = ""
    model_dirs: tuple[Path, ...] = field(default_factory=lambda: (REPO_ROOT / "models" / "embedded",))
    repository_dir: Path = REPO_ROOT / "model_repository" / "generated" / "embedded"
    triton_grpc_port: int = 0
    triton_start_timeout_s: float = 180.0
    encoder_threads: int = 2
    precision: str = "fp32"
    head: str = "auto"
    decoding: str = "auto"
    api_keys: tuple[str, ...] = ()
    api_key_file: Path | None = None
    idle_timeout_s: float = 10.0
    finalize_timeout_s: float = 10.0
    max_segment_s: float = 15.0
    max_channels: int = 8
    max_sample_rate: int = 48000
    max_message_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 512 * 1024 * 1024
    max_pending_chunks: int = 8
    max_sessions: int = 0
    callback_hosts: tuple[str, ...] = ()
    drain_timeout_s: float = 15.0
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        """True when this process starts and owns its Triton server."""
        return not self.triton_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; flags default to None so the environment can fill the gap."""
    for setting in SETTINGS:
        parser.add_argument(setting.flag, dest=setting.name, default=None, help=f"{setting.help} [{setting.env}]")


def resolve(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Flag beats environment variable beats default."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = getattr(args, setting.name, None) if args is not None else None
        if raw is None:
            raw = env.get(setting.env)
        if raw is None:
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise SystemExit(f"invalid {setting.flag} / {setting.env}: {exc}") from exc
    return dataclasses.replace(Config(), **values)


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| Flag | Environment variable | Default | Meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        if isinstance(default, Path) or (isinstance(default, str) and default.startswith(str(REPO_ROOT))):
            default = os.path.relpath(str(default), REPO_ROOT)
        shown = f"`{default}`" if default not in (None, "", ()) else "(none)"
        rows.append(f"| `{setting.flag}` | `{setting.env}` | {shown} | {setting.help} |")
    return "\n".join(rows)
