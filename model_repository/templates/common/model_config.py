"""Checks of a Triton model config (the JSON dict a Python backend model receives).

``initialize`` of every model uses these to refuse a config that does not match what its
``execute`` assumes, so that a wrong rendering fails at load time with a clear message
instead of producing wrong tensors. No Triton imports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """The model config does not fit the model."""


def parameter(config: dict[str, Any], key: str, cast: Callable[[str], T]) -> T:
    """The ``parameters`` entry ``key`` converted by ``cast``; raises ``ConfigError``."""
    try:
        raw = config["parameters"][key]["string_value"]
    except KeyError:
        raise ConfigError(f"{config.get('name')}: parameter {key!r} missing") from None
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{config.get('name')}: parameter {key}={raw!r}: {exc}") from None


def tensor_dims(config: dict[str, Any], kind: str, name: str, data_type: str | tuple[str, ...]) -> list[int]:
    """Dims (batch excluded) of input or output ``name``, after checking its data type."""
    allowed = (data_type,) if isinstance(data_type, str) else data_type
    for entry in config.get(kind, []):
        if entry["name"] == name:
            if entry["data_type"] not in allowed:
                raise ConfigError(f"{config['name']}: {kind} {name} is {entry['data_type']}, expected {allowed}")
            return [int(d) for d in entry["dims"]]
    raise ConfigError(f"{config['name']}: {kind} {name} missing")


def expect_dims(
    config: dict[str, Any], kind: str, name: str, data_type: str | tuple[str, ...], dims: Sequence[int]
) -> None:
    """Raise ``ConfigError`` unless ``name`` has exactly ``dims`` (-1 = variable)."""
    got = tensor_dims(config, kind, name, data_type)
    if got != list(dims):
        raise ConfigError(f"{config['name']}: {kind} {name} has dims {got}, expected {list(dims)}")


def expect_sequence_batching(config: dict[str, Any]) -> None:
    """The model keeps per-sequence state: it needs the sequence batcher and batching."""
    if "sequence_batching" not in config:
        raise ConfigError(f"{config['name']}: sequence_batching is required")
    if int(config.get("max_batch_size", 0)) < 1:
        raise ConfigError(f"{config['name']}: max_batch_size must be >= 1")
    controls = {c["name"] for c in config["sequence_batching"].get("control_input", [])}
    missing = {"START", "END", "CORRID"} - controls
    if missing:
        raise ConfigError(f"{config['name']}: control inputs {sorted(missing)} missing")


def load_sequence_model(args: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The parsed config of a sequence-batched model (checked as such) and its version folder."""
    config: dict[str, Any] = json.loads(args["model_config"])
    expect_sequence_batching(config)
    return config, Path(args["model_repository"]) / args["model_version"]
