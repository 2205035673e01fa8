"""The container targets (``onnxruntime``, ``tensorrt``) for every head of the session's random
exports: a CTC model, a hybrid served through RNNT (default) or CTC, and an RNNT model. No Triton container
here, so this checks what loading would check (configs parse with Triton's protobuf schema,
ensembles are wired, each wrapped encoder graph matches its config and finds its weights) and
runs each wrapped encoder on onnxruntime against its export, request plans of 0 to 2 chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.build_model_repository import build_repository
from tests.parity.conftest import ExportedModel
from tests.triton.repository_checks import (
    assert_ensembles_are_wired,
    assert_state_encoder_matches_its_graph,
    parse_config,
)
from tests.triton.state_harness import assert_plans_equal_the_export, session

pytestmark = pytest.mark.nemo

# (model, head option, head served)
SERVED = [("ctc", "auto", "ctc"), ("hybrid", "auto", "rnnt"), ("hybrid", "ctc", "ctc"), ("rnnt", "auto", "rnnt")]


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
@pytest.mark.parametrize("model,option,head", SERVED)
def test_container_target_serves_the_head(
    target: str, model: str, option: str, head: str, exported: dict[str, ExportedModel], tmp_path: Path
) -> None:
    export = exported[model]
    repo = tmp_path / "repo"
    build_repository(target, [export.folder], repo, head=option, link_files=False)
    for config in repo.glob("*/config.pbtxt"):
        assert parse_config(config).name == config.parent.name
    assert_ensembles_are_wired(repo)
    name = export.manifest["model"]
    for profile, facts in export.manifest["profiles"].items():
        folder = repo / f"{name}_{profile}_encoder"
        assert_state_encoder_matches_its_graph(folder)
        decoder = repo / f"{name}_{profile}_decoder" / "1"
        assert (decoder / "decoder_joint-rnnt.onnx").is_file() == (head == "rnnt")
        # Real files: the repository is mounted into a container.
        assert not any(p.is_symlink() for p in repo.rglob("*"))
        original = session(export.folder / facts["onnx"][head])
        assert_plans_equal_the_export(session(folder / "1" / "model.onnx"), original, export.folder, profile, facts)
