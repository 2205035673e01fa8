"""``scripts/build_model_repository.py``: every target renders, strictly, into configs that
Triton's own protobuf schema accepts and whose ensemble steps, composing models and graphs fit
together (no NGC container here: this is what stands in for loading them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2

from scripts.build_model_repository import (
    MARKER,
    TARGETS,
    TEMPLATES,
    RenderError,
    build_repository,
    render,
)
from tests.triton.helpers import CONTRACT_KEYS, MODEL_DIR, model_manifest
from tests.triton.repository_checks import (
    assert_ensembles_are_wired,
    assert_state_encoder_matches_its_graph,
    parse_config,
)



CONTRACT_OUTPUTS = {"CHUNK_START", "NUM_FRAMES", "TOKENS", "TOKEN_FRAMES", "TOKEN_CONF",
                    "PARTIAL_TOKENS", "PARTIAL_FRAMES", "PARTIAL_CONF"}
DIAGNOSTIC_OUTPUTS = {"ENCODER_OUT", "ENCODER_FRAMES"}


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_renders_valid_configs(target: str, tmp_path: Path) -> None:
    names = build_repository(target, [MODEL_DIR], tmp_path / "repo")
    profiles = model_manifest()["profiles"]
    assert names == [f"asr_embedded_{p}" for p in profiles]
    configs = sorted((tmp_path / "repo").glob("*/config.pbtxt"))
    assert len(configs) == 4 * len(profiles)
    for path in configs:
        text = path.read_text()
        assert "${" not in text, path
        config = parse_config(path)
        assert config.name == path.parent.name
        assert config.max_batch_size > 0
        if config.platform != "ensemble":
            seq = config.sequence_batching
            assert seq.HasField("oldest") and seq.max_sequence_idle_microseconds > 10_000_000
            controls = {c.name for c in seq.control_input}
            assert controls == {"START", "END", "READY", "CORRID"}
            corrid = next(c for c in seq.control_input if c.name == "CORRID").control[0]
            assert corrid.data_type == model_config_pb2.TYPE_UINT64
    for path in (tmp_path / "repo").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".pbtxt"):
            assert "${" not in path.read_text(), path


@pytest.mark.parametrize("target", TARGETS)
def test_ensemble_manifest_follows_the_contract(target: str, tmp_path: Path) -> None:
    build_repository(target, [MODEL_DIR], tmp_path / "repo")
    model = model_manifest()
    for name, facts in model["profiles"].items():
        config = parse_config(tmp_path / "repo" / f"asr_embedded_{name}" / "config.pbtxt")
        manifest = json.loads(config.parameters["manifest"].string_value)
        assert CONTRACT_KEYS <= set(manifest)
        assert manifest["vocabulary"] == model["vocabulary"]  # "▁" survives the escaping
        assert manifest["chunk_samples"] == facts["chunk_samples"]
        audio = next(i for i in config.input if i.name == "AUDIO")
        assert list(audio.dims) == [facts["first_chunk_samples"]]
        assert {o.name for o in config.output} == CONTRACT_OUTPUTS | DIAGNOSTIC_OUTPUTS
        assert manifest["head"] == "ctc"
        assert manifest["partial_outputs"] is True  # the frontend asks for PARTIAL_* only then


def test_embedded_encoder_state_lives_in_the_model(tmp_path: Path) -> None:
    build_repository("embedded", [MODEL_DIR], tmp_path / "repo", profiles=["la13"])
    encoder = parse_config(tmp_path / "repo" / "embedded_la13_encoder" / "config.pbtxt")
    assert encoder.backend == "python" and not encoder.sequence_batching.state
    files = {p.name for p in (tmp_path / "repo" / "embedded_la13_encoder" / "1").iterdir()}
    assert {"model.py", "sequence_state.py", "encoder-la13.onnx", "encoder.weights"} <= files


def encoder_graph(repo: Path) -> str:
    return parse_config(repo / "embedded_la13_encoder" / "config.pbtxt").parameters["onnx_file"].string_value


def test_precision_auto_takes_the_int8_graphs_a_model_folder_has(tmp_path: Path) -> None:
    build_repository("embedded", [MODEL_DIR], tmp_path / "shipped", profiles=["la13"], precision="auto")
    assert encoder_graph(tmp_path / "shipped") == "encoder-la13.int8.onnx"
    # A folder exported without --int8: auto falls back to fp32, where int8 would refuse.
    bare = tmp_path / "bare"
    shutil.copytree(MODEL_DIR, bare)
    manifest = json.loads((bare / "manifest.json").read_text())
    for facts in manifest["profiles"].values():
        facts["onnx"].pop("ctc_int8")
    (bare / "manifest.json").write_text(json.dumps(manifest))
    build_repository("embedded", [bare], tmp_path / "fp32", profiles=["la13"], precision="auto")
    assert encoder_graph(tmp_path / "fp32") == "encoder-la13.onnx"
    with pytest.raises(RenderError, match="int8"):
        build_repository("embedded", [bare], tmp_path / "int8", profiles=["la13"], precision="int8")


def test_strict_substitution() -> None:
    assert render("a ${x} b", {"x": 1}, "t") == "a 1 b"
    with pytest.raises(RenderError, match="KeyError"):
        render("a ${x} ${y}", {"x": 1}, "t")
    with pytest.raises(RenderError, match="placeholder"):
        render("a ${x}", {"x": "${z}"}, "t")


def test_a_template_with_an_unknown_key_fails(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = templates / "ctc_decoder" / "config.pbtxt"
    config.write_text(config.read_text() + "\n# ${not_a_known_key}\n")
    with pytest.raises(RenderError, match="not_a_known_key"):
        build_repository("embedded", [MODEL_DIR], tmp_path / "repo", templates=templates)


def test_refuses_to_replace_a_folder_it_did_not_generate(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(RenderError, match="refusing"):
        build_repository("embedded", [MODEL_DIR], out)
    assert (out / "keep.txt").exists()
    out2 = tmp_path / "generated"
    build_repository("embedded", [MODEL_DIR], out2)
    assert (out2 / MARKER).is_file()
    build_repository("embedded", [MODEL_DIR], out2, profiles=["la1"])
    assert sorted(p.name for p in out2.iterdir() if p.is_dir()) == [
        "asr_embedded_la1",
        "embedded_la1_decoder",
        "embedded_la1_encoder",
        "embedded_la1_features",
    ]


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError):
        build_repository("embedded", [MODEL_DIR], tmp_path / "a", max_sequence_idle_us=5_000_000)
    with pytest.raises(RenderError):
        build_repository("embedded", [MODEL_DIR], tmp_path / "b", max_batch_size=4, preferred_batch_sizes=(8,))
    with pytest.raises(RenderError):
        build_repository("nope", [MODEL_DIR], tmp_path / "c")
    with pytest.raises(RenderError, match="no rnnt head"):
        build_repository("embedded", [MODEL_DIR], tmp_path / "d", head="rnnt")


def test_a_model_without_a_servable_profile_is_refused(tmp_path: Path) -> None:
    # What export_nemo.py wrote for offline models before buffered serving existed.
    folder = tmp_path / "old"
    folder.mkdir()
    manifest = model_manifest() | {"mode": "buffered", "profiles": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RenderError, match="re-export"):
        build_repository("embedded", [MODEL_DIR, folder], tmp_path / "repo")


def test_shipped_model_files_exist() -> None:
    manifest = model_manifest()
    assert manifest["mode"] == "cache_aware"
    for facts in manifest["profiles"].values():
        assert (MODEL_DIR / facts["onnx"]["ctc"]).is_file()
        assert (MODEL_DIR / facts["onnx_weights"]["ctc"]).is_file()
    assert (MODEL_DIR / "features.npz").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_ensemble_steps_fit_their_models(target: str, tmp_path: Path) -> None:
    build_repository(target, [MODEL_DIR], tmp_path / "repo")
    assert_ensembles_are_wired(tmp_path / "repo")


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_state_target_config_matches_its_graph(target: str, tmp_path: Path) -> None:
    build_repository(target, [MODEL_DIR], tmp_path / "repo", profiles=["la6"])
    folder = tmp_path / "repo" / "embedded_la6_encoder"
    assert_state_encoder_matches_its_graph(folder)
    if target == "tensorrt":
        shapes = (folder / "trtexec_shapes.txt").read_text()
        assert "--maxShapes=FEATURES:32x3x80x" in shapes and "cache_last_chan_len:32x1" in shapes
