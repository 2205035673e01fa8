"""Small random NeMo models, built and exported once per session for the tests of this folder.

The NeMo side (torch) runs in ``.venv-nemo`` through ``nemo_reference.py``; ``scripts/
export_nemo.py`` exports with it as a user would. Without that environment (CI creates it with
``scripts/setup_nemo_env.sh``) every test here is skipped.

Two models share one tokenizer: a CTC model exported as ``en`` and a hybrid RNNT+CTC model
exported as ``fr`` (the multi-model test serves both, each for its language). Tiny on purpose
(d_model 64, 2 layers, BPE 64): CI has 2 cores.
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


@dataclass(frozen=True)
class ExportedModel:
    """A random ``.nemo`` and its ``export_nemo.py`` folder."""

    kind: str  # "ctc" or "hybrid"
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


@pytest.fixture(scope="session")
def exported(nemo_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportedModel]:
    """``{"ctc": en model, "hybrid": fr model}``, built and exported."""
    tmp = tmp_path_factory.mktemp("nemo_models")
    tokenizer = tmp / "tokenizer"
    models = {
        "ctc": ExportedModel("ctc", tmp / "ctc.nemo", tmp / "en"),
        "hybrid": ExportedModel("hybrid", tmp / "hybrid.nemo", tmp / "fr"),
    }
    wait_ok(nemo_run(REFERENCE, "build", models["ctc"].nemo, *MODEL_OPTIONS, "--tokenizer-out", tokenizer))
    build_hybrid = nemo_run(
        REFERENCE, "build", models["hybrid"].nemo, *MODEL_OPTIONS, "--hybrid", "--tokenizer", tokenizer
    )
    export_en = nemo_run(
        REPO / "scripts" / "export_nemo.py", models["ctc"].nemo, "--out", models["ctc"].folder, "--name", "en"
    )
    wait_ok(build_hybrid)
    export_fr = nemo_run(
        REPO / "scripts" / "export_nemo.py",
        models["hybrid"].nemo,
        "--out",
        models["hybrid"].folder,
        "--name",
        "fr",
        "--language",
        "fr",
    )
    wait_ok(export_en, export_fr)
    return models
