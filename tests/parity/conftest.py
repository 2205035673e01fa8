"""Small random NeMo models, built and exported once per session for the tests of this folder.

The NeMo side (torch) runs in ``.venv-nemo`` through ``nemo_reference.py``; ``scripts/
export_nemo.py`` exports with it as a user would. Without that environment (CI creates it with
``scripts/setup_nemo_env.sh``) every test here is skipped.

Every model shares one tokenizer. Cache-aware (``exported``): a CTC model exported as ``en``,
a hybrid RNNT+CTC model exported as ``fr`` (the multi-model test serves both, each for its
language) and a pure RNNT model exported as ``rn``. Offline, served buffered
(``exported_buffered``): a CTC model exported as ``off`` (language ``de``) and a hybrid exported
as ``offh``, both with the window ``BUFFER_OPTIONS``. Tiny on purpose (d_model 64, 2 layers,
BPE 64): CI has 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NEMO_PYTHON = REPO / ".venv-nemo" / "bin" / "python"
REFERENCE = Path(__file__).with_name("nemo_reference.py")
# Two look-aheads ([16, 3]: 320 ms chunks, the default; [16, 1]: 160 ms); a 16-frame left
# context is reached within the test audio, so the cache roll-over is exercised too.
MODEL_OPTIONS = [
    "--d-model", "64",
    "--n-layers", "2",
    "--n-heads", "2",
    "--vocab-size", "64",
    "--pred-hidden", "64",
    "--att-context-size", "[[16,3],[16,1]]",
    "--max-sentences", "3000",
]  # fmt: skip
NEMO_TIMEOUT_S = 600
# A smaller window than the defaults (1.6 s chunks, 1.2 s of context each side) so that the
# test audio (3 to 7 s) has chunks with full context on both sides, and unequal context sides so
# that a swapped left and right cannot pass.
BUFFER_OPTIONS = ["--buffer-chunk-s", "0.8", "--buffer-left-s", "0.96", "--buffer-right-s", "0.48"]


@dataclass(frozen=True)
class ExportedModel:
    """A random ``.nemo`` and its ``export_nemo.py`` folder."""

    kind: str  # "ctc", "hybrid", "rnnt", "offline" or "offline_hybrid"
    nemo: Path
    folder: Path

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.folder / "manifest.json").read_text())


def nemo_run(*args: str | Path) -> subprocess.Popen[bytes]:
    """Start ``.venv-nemo/bin/python ARGS`` in the repository root."""
    return subprocess.Popen(
        [str(NEMO_PYTHON), *map(str, args)],
        cwd=REPO,
        # One torch thread: these models are tiny, and on a busy 2-core machine torch's worker
        # threads spend their time waiting for each other (measured: 20x slower streaming).
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ok(*procs: subprocess.Popen[bytes]) -> None:
    """Wait for every process; fail with the output tail of one that failed."""
    for proc in procs:
        out, _ = proc.communicate(timeout=NEMO_TIMEOUT_S)
        if proc.returncode != 0:
            tail = out.decode(errors="replace")[-4000:]
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{tail}")


@pytest.fixture(scope="session")
def nemo_python() -> Path:
    if not NEMO_PYTHON.exists():
        pytest.skip(f"NeMo environment {NEMO_PYTHON} is absent (scripts/setup_nemo_env.sh creates it)")
    return NEMO_PYTHON


def build_and_export(
    model: ExportedModel, name: str, language: str, build: list[str], export: list[str], tokenizer: Path
) -> subprocess.Popen[bytes]:
    """Build ``model`` (with ``tokenizer``), then start its export as ``--name name``."""
    wait_ok(nemo_run(REFERENCE, "build", model.nemo, *MODEL_OPTIONS, *build, "--tokenizer", tokenizer))
    script = REPO / "scripts" / "export_nemo.py"
    return nemo_run(script, model.nemo, "--out", model.folder, "--name", name, "--language", language, *export)


@pytest.fixture(scope="session")
def exported(nemo_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportedModel]:
    """``{"ctc": en model, "hybrid": fr model, "rnnt": rn model}``, built and exported."""
    tmp = tmp_path_factory.mktemp("nemo_models")
    tokenizer = tmp / "tokenizer"
    models = {
        "ctc": ExportedModel("ctc", tmp / "ctc.nemo", tmp / "en"),
        "hybrid": ExportedModel("hybrid", tmp / "hybrid.nemo", tmp / "fr"),
        "rnnt": ExportedModel("rnnt", tmp / "rnnt.nemo", tmp / "rn"),
    }
    wait_ok(nemo_run(REFERENCE, "build", models["ctc"].nemo, *MODEL_OPTIONS, "--tokenizer-out", tokenizer))
    export_en = nemo_run(
        REPO / "scripts" / "export_nemo.py", models["ctc"].nemo, "--out", models["ctc"].folder, "--name", "en"
    )
    # Each build overlaps the previous model's export.
    export_fr = build_and_export(models["hybrid"], "fr", "fr", ["--hybrid"], [], tokenizer)
    # Another seed: with the hybrid's, the two encoders and joints would be the same weights.
    export_rn = build_and_export(models["rnnt"], "rn", "en", ["--rnnt", "--seed", "7"], [], tokenizer)
    wait_ok(export_en, export_fr, export_rn)
    return models


@pytest.fixture(scope="session")
def exported_buffered(exported: dict[str, ExportedModel]) -> dict[str, ExportedModel]:
    """``{"offline": off model (CTC), "offline_hybrid": offh model}``: not cache-aware, exported
    for buffered serving with ``BUFFER_OPTIONS`` (the tokenizer is ``exported``'s)."""
    tmp = exported["ctc"].folder.parent
    models = {
        "offline": ExportedModel("offline", tmp / "offline.nemo", tmp / "off"),
        "offline_hybrid": ExportedModel("offline_hybrid", tmp / "offline_hybrid.nemo", tmp / "offh"),
    }
    export_off = build_and_export(models["offline"], "off", "de", ["--offline"], BUFFER_OPTIONS, tmp / "tokenizer")
    export_offh = build_and_export(
        models["offline_hybrid"], "offh", "es", ["--offline", "--hybrid"], BUFFER_OPTIONS, tmp / "tokenizer"
    )
    wait_ok(export_off, export_offh)
    return models
