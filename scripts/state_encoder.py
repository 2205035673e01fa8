"""Wrap an exported cache-aware encoder graph for Triton implicit state.

On the ``onnxruntime`` and ``tensorrt`` targets Triton keeps the encoder caches as implicit
state and hands them to the graph once per request, so one graph run must consume whatever
the features model produced for that request: no chunk (a keep-alive, a chunk still filling,
a FLUSH with nothing pending), one chunk (the steady state) or up to ``max_chunks`` (a FLUSH or
END that completes a chunk and pads another). The wrapper takes the features model's
fixed-shape output directly::

    FEATURES            FP32  [B, max_chunks, n_mels, window]
    NUM_CHUNKS          INT32 [B, 1]          valid chunks of each item, 0..max_chunks
    cache_last_channel, cache_last_time       FP32 state, NeMo's shapes
    cache_last_chan_len INT64 [B, 1]          state: NeMo's length cache, renamed and reshaped
  →
    ENCODED             FP32  [B, max_chunks * frames, width]   CTC log-probs, or the encoder
                                              output (RNNT head) transposed to frames x d_model
    ENC_FRAMES          INT32 [B, 1]          NUM_CHUNKS * frames
    ENCODER_OUT, ENCODER_FRAMES               copies for the ensemble's diagnostic outputs
    *_next              the states after the item's last valid chunk

Those are the names and shapes of the embedded target's Python encoder, so the ensemble and
the decoders are the same on every target. The length cache is renamed
(``cache_last_chan_len``: with NeMo's name Triton can pair it with ``cache_last_channel``,
issue #8586) and carried as [B, 1] because a state has a fixed per-item shape.

Pass ``i`` of the encoder runs inside an ONNX ``If`` whose condition is "some item of the batch
has more than ``i`` chunks": a batch of keep-alives costs no encoder run, a steady-state batch
exactly one. Within a pass, items without an ``i``-th chunk keep their caches and get zero rows
(``Where`` on ``NUM_CHUNKS > i``). The passes are copies of the encoder's nodes that read the
same initializers, so the weights stay in the exported external file, stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

# NeMo's cache-aware encoder signature (ConformerEncoder.forward_for_export).
ENCODER_INPUTS = ("audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len")
ENCODER_OUTPUTS = ("encoded_lengths", "cache_last_channel_next", "cache_last_time_next", "cache_last_channel_next_len")
# First output: "logprobs" [B, T, V] with the CTC head, "outputs" [B, d_model, T] without.
HEAD_OUTPUTS = ("logprobs", "outputs")
LEN_STATE_IN = "cache_last_chan_len"
LEN_STATE_OUT = "cache_last_chan_len_next"


class GraphError(ValueError):
    """The graph is not a NeMo cache-aware encoder export."""


@dataclass(frozen=True)
class Geometry:
    """What the wrapper needs to know about the chunks (from the export manifest)."""

    max_chunks: int
    n_mels: int
    window: int  # mel frames per chunk, pre-encode context included
    frames: int  # encoder frames per chunk
    width: int  # values per encoder frame: vocabulary + blank (CTC) or d_model (RNNT)
    cache_last_channel: tuple[int, ...]  # per item: [layers, left context, d_model]
    cache_last_time: tuple[int, ...]  # per item: [layers, d_model, conv context]


def wrap_encoder(src: Path, dst: Path, geometry: Geometry) -> None:
    """Write the wrapped graph of ``src`` to ``dst`` (external weights keep their location)."""
    model = onnx.load(str(src), load_external_data=False)
    enc = model.graph
    inputs = [v.name for v in enc.input]
    outputs = [v.name for v in enc.output]
    if tuple(inputs) != ENCODER_INPUTS or outputs[0] not in HEAD_OUTPUTS or tuple(outputs[1:]) != ENCODER_OUTPUTS:
        raise GraphError(f"{src}: inputs {inputs}, outputs {outputs}: not a NeMo cache-aware encoder")
    g = geometry
    b = _Builder(initializers={t.name for t in enc.initializer})

    # Prelude, outside the passes: batch size, the constant chunk length, float chunk counts.
    b.node("Shape", ["FEATURES"], ["batch"], start=0, end=1)
    b.const("window", TensorProto.INT64, [1], [g.window])
    b.node("Expand", ["window", "batch"], ["length"])
    b.const("len_axes", TensorProto.INT64, [1], [1])
    b.node("Squeeze", [LEN_STATE_IN, "len_axes"], ["chan_len_in"])
    b.node("Cast", ["NUM_CHUNKS"], ["chunks_f"], to=TensorProto.FLOAT)
    b.node("ReduceMax", ["chunks_f"], ["most_chunks"], keepdims=0)
    b.const("frames", TensorProto.INT32, [], [g.frames])
    b.node("Mul", ["NUM_CHUNKS", "frames"], ["ENC_FRAMES"])
    b.const("row_shape", TensorProto.INT64, [2], [g.frames, g.width])
    b.node("Concat", ["batch", "row_shape"], ["rows_shape"], axis=0)
    b.const("item4", TensorProto.INT64, [4], [-1, 1, 1, 1])
    b.const("item3", TensorProto.INT64, [3], [-1, 1, 1])
    b.const("item1", TensorProto.INT64, [1], [-1])
    b.const("zero", TensorProto.FLOAT, [], [0.0])

    state = ("cache_last_channel", "cache_last_time", "chan_len_in")
    rows = []
    for i in range(g.max_chunks):
        b.const(f"index_{i}", TensorProto.FLOAT, [], [float(i)])
        b.node("Greater", ["most_chunks", f"index_{i}"], [f"run_{i}"])
        b.node("Greater", ["chunks_f", f"index_{i}"], [f"has_{i}"])
        then_branch = _pass(enc, b.initializers, i, state, outputs[0] == "outputs")
        else_branch = _skip(i, state)
        out = [f"rows_{i}", f"channel_{i}", f"time_{i}", f"chan_len_{i}"]
        b.node("If", [f"run_{i}"], out, then_branch=then_branch, else_branch=else_branch)
        rows.append(out[0])
        state = (out[1], out[2], out[3])
    b.node("Concat", rows, ["ENCODED"], axis=1)
    b.node("Identity", ["ENCODED"], ["ENCODER_OUT"])
    b.node("Identity", ["ENC_FRAMES"], ["ENCODER_FRAMES"])
    b.node("Identity", [state[0]], ["cache_last_channel_next"])
    b.node("Identity", [state[1]], ["cache_last_time_next"])
    b.node("Unsqueeze", [state[2], "len_axes"], [LEN_STATE_OUT])

    # The export leaves the cache lengths symbolic; states have fixed shapes.
    channel: list[str | int] = ["batch", *g.cache_last_channel]
    time: list[str | int] = ["batch", *g.cache_last_time]
    graph = helper.make_graph(
        b.nodes,
        f"{enc.name}_triton_state",
        [
            helper.make_tensor_value_info("FEATURES", TensorProto.FLOAT, ["batch", g.max_chunks, g.n_mels, g.window]),
            helper.make_tensor_value_info("NUM_CHUNKS", TensorProto.INT32, ["batch", 1]),
            helper.make_tensor_value_info("cache_last_channel", TensorProto.FLOAT, channel),
            helper.make_tensor_value_info("cache_last_time", TensorProto.FLOAT, time),
            helper.make_tensor_value_info(LEN_STATE_IN, TensorProto.INT64, ["batch", 1]),
        ],
        [
            helper.make_tensor_value_info("ENCODED", TensorProto.FLOAT, ["batch", g.max_chunks * g.frames, g.width]),
            helper.make_tensor_value_info("ENC_FRAMES", TensorProto.INT32, ["batch", 1]),
            helper.make_tensor_value_info(
                "ENCODER_OUT", TensorProto.FLOAT, ["batch", g.max_chunks * g.frames, g.width]
            ),
            helper.make_tensor_value_info("ENCODER_FRAMES", TensorProto.INT32, ["batch", 1]),
            helper.make_tensor_value_info("cache_last_channel_next", TensorProto.FLOAT, channel),
            helper.make_tensor_value_info("cache_last_time_next", TensorProto.FLOAT, time),
            helper.make_tensor_value_info(LEN_STATE_OUT, TensorProto.INT64, ["batch", 1]),
        ],
        initializer=[*enc.initializer, *b.constants],
    )
    wrapped = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="ddx-stt state_encoder")
    wrapped.ir_version = model.ir_version
    onnx.save(wrapped, str(dst))


class _Builder:
    """Collects nodes and small constant initializers of the outer graph."""

    def __init__(self, initializers: set[str]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self.initializers = initializers

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self._new(outputs)
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"ddx_{outputs[0]}", **attrs))

    def const(self, name: str, dtype: int, dims: list[int], values: list[float] | list[int]) -> None:
        self._new([name])
        self.constants.append(helper.make_tensor(name, dtype, dims, values))

    def _new(self, names: list[str]) -> None:
        # The passes read the encoder's weights by name from this scope.
        clash = set(names) & self.initializers
        if clash:
            raise GraphError(f"the encoder has initializers named {sorted(clash)}, which the wrapper uses")


def _pass(
    enc: onnx.GraphProto, initializers: set[str], i: int, state: tuple[str, str, str], transpose: bool
) -> onnx.GraphProto:
    """Then-branch of pass ``i``: the encoder on chunk ``i``, its results kept where ``has_i``."""
    prefix = f"p{i}/"
    feed = dict(zip(ENCODER_INPUTS, (f"{prefix}audio_signal", "length", *state), strict=True))

    def rename(name: str) -> str:
        if not name or name in initializers:
            return name
        return feed.get(name, prefix + name)

    nodes = [
        helper.make_node("Constant", [], [f"{prefix}index"], value=helper.make_tensor("", TensorProto.INT64, [], [i])),
        helper.make_node("Gather", ["FEATURES", f"{prefix}index"], [f"{prefix}audio_signal"], axis=1),
    ]
    for n in enc.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        copy.name = prefix + (n.name or n.output[0])
        copy.input[:] = [rename(x) for x in n.input]
        copy.output[:] = [rename(x) for x in n.output]
        nodes.append(copy)
    out = {name: prefix + name for name in (*HEAD_OUTPUTS, *ENCODER_OUTPUTS)}
    head = out["outputs"] if transpose else out["logprobs"]
    if transpose:
        # [B, d_model, T] → [B, T, d_model]: rows are encoder frames for every head.
        nodes.append(helper.make_node("Transpose", [head], [f"{prefix}frames_first"], perm=[0, 2, 1]))
        head = f"{prefix}frames_first"
    mask = f"has_{i}"
    nodes += [
        helper.make_node("Reshape", [mask, "item4"], [f"{prefix}mask4"]),
        helper.make_node("Reshape", [mask, "item3"], [f"{prefix}mask3"]),
        helper.make_node("Reshape", [mask, "item1"], [f"{prefix}mask1"]),
        helper.make_node("Where", [f"{prefix}mask3", head, "zero"], [f"then_rows_{i}"]),
        helper.make_node("Where", [f"{prefix}mask4", out["cache_last_channel_next"], state[0]], [f"then_channel_{i}"]),
        helper.make_node("Where", [f"{prefix}mask4", out["cache_last_time_next"], state[1]], [f"then_time_{i}"]),
        helper.make_node(
            "Where", [f"{prefix}mask1", out["cache_last_channel_next_len"], state[2]], [f"then_chan_len_{i}"]
        ),
    ]
    return helper.make_graph(nodes, f"pass_{i}", [], _branch_outputs("then", i))


def _skip(i: int, state: tuple[str, str, str]) -> onnx.GraphProto:
    """Else-branch of pass ``i``: no item has an ``i``-th chunk; caches pass through."""
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["rows_shape"],
            [f"else_rows_{i}"],
            value=helper.make_tensor("", TensorProto.FLOAT, [1], [0.0]),
        ),
        helper.make_node("Identity", [state[0]], [f"else_channel_{i}"]),
        helper.make_node("Identity", [state[1]], [f"else_time_{i}"]),
        helper.make_node("Identity", [state[2]], [f"else_chan_len_{i}"]),
    ]
    return helper.make_graph(nodes, f"skip_{i}", [], _branch_outputs("else", i))


def _branch_outputs(branch: str, i: int) -> list[onnx.ValueInfoProto]:
    return [
        helper.make_tensor_value_info(f"{branch}_rows_{i}", TensorProto.FLOAT, None),
        helper.make_tensor_value_info(f"{branch}_channel_{i}", TensorProto.FLOAT, None),
        helper.make_tensor_value_info(f"{branch}_time_{i}", TensorProto.FLOAT, None),
        helper.make_tensor_value_info(f"{branch}_chan_len_{i}", TensorProto.INT64, None),
    ]
