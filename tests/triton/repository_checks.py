"""What Triton would check when loading a rendered repository, without a Triton container:
configs parse with Triton's own ``model_config.proto``, ensemble steps fit their models, and
an implicit-state encoder's config matches its ONNX graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

# ONNX element type name → Triton data type.
ONNX_TO_TRITON = {"float": "TYPE_FP32", "int32": "TYPE_INT32", "int64": "TYPE_INT64"}
LEN_STATES = {
    "cache_last_channel": "cache_last_channel_next",
    "cache_last_time": "cache_last_time_next",
    "cache_last_chan_len": "cache_last_chan_len_next",
}


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def tensors(config: model_config_pb2.ModelConfig, kind: str) -> dict[str, tuple[str, list[int]]]:
    """Name → (data type, dims) of a config's inputs or outputs."""
    return {t.name: (model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in getattr(config, kind)}


def assert_ensembles_are_wired(repo: Path) -> None:
    """Every ensemble step names real inputs and outputs of its model, every tensor a step
    reads was produced before (same type and dims), and every ensemble output is produced."""
    for path in repo.glob("asr_*/config.pbtxt"):
        ensemble = parse_config(path)
        available = tensors(ensemble, "input")
        for step in ensemble.ensemble_scheduling.step:
            model = parse_config(repo / step.model_name / "config.pbtxt")
            inputs, outputs = tensors(model, "input"), tensors(model, "output")
            for key, value in step.input_map.items():
                assert available[value] == inputs[key], (path, step.model_name, key)
            for key, value in step.output_map.items():
                available[value] = outputs[key]
        for name, spec in tensors(ensemble, "output").items():
            assert available[name] == spec, (path, name)


def _graph_tensors(values: Any) -> dict[str, tuple[str, list[int | str]]]:
    import onnx

    out = {}
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        out[v.name] = (ONNX_TO_TRITON[onnx.TensorProto.DataType.Name(t.elem_type).lower()], dims)
    return out


def assert_state_encoder_matches_its_graph(folder: Path) -> None:
    """What Triton's onnxruntime / tensorrt backend checks at load time: the encoder config's
    inputs, outputs and states are its graph's, with the graph's types and (batch first) dims."""
    import onnx

    encoder = parse_config(folder / "config.pbtxt")
    states = {s.input_name: s.output_name for s in encoder.sequence_batching.state}
    assert states == LEN_STATES
    graph = onnx.load(str(folder / "1" / "model.onnx"), load_external_data=False).graph
    graph_in, graph_out = _graph_tensors(graph.input), _graph_tensors(graph.output)
    state_in = {
        s.input_name: (model_config_pb2.DataType.Name(s.data_type), list(s.dims))
        for s in encoder.sequence_batching.state
    }
    want_in = tensors(encoder, "input") | state_in
    want_out = tensors(encoder, "output") | {states[name]: spec for name, spec in state_in.items()}
    assert set(graph_in) == set(want_in) and set(graph_out) == set(want_out)
    for name, (dtype, dims) in {**want_in, **want_out}.items():
        got_type, got_dims = (graph_in | graph_out)[name]
        assert got_type == dtype and got_dims == ["batch", *dims], name
    for tensor in graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                assert (folder / "1" / entry.value).is_file(), entry.value
