"""Static checks on an untrusted ONNX file, done before onnxruntime ever opens it.

A model may only use the standard operators a Piper or VITS graph is made of (custom
domains would need native code we do not ship; control flow — ``Loop``, ``Scan``, ``If`` —
lets a graph behave differently for inputs the registration probe never tried, e.g. run a
loop for hours on a longer sentence) and must carry all its weights inline: an
external-data reference is a path chosen by the uploader, i.e. a way to make the server
read its own files. Graphs we compile ourselves from coqui checkpoints may use ``If``:
coqui's VITS exports one, from its own code, not from the uploader's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from voicepocket.errors import InvalidVoiceFiles

STANDARD_DOMAINS = frozenset({"", "ai.onnx"})

VOICE_OPERATORS = frozenset({
    # What joe (a Piper export) and coqui's VITS export use ...
    "Add", "And", "Cast", "Ceil", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "CumSum", "Div", "Equal", "Erf", "Exp", "Expand", "Gather",
    "GatherElements", "GatherND", "GreaterOrEqual", "Identity", "LayerNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "MatMul", "Mul", "Neg", "NonZero", "Not", "Pad",
    "Pow", "RandomNormalLike", "Range", "ReduceMax", "ReduceMean", "ReduceSum", "Relu",
    "Reshape", "ScatterND", "Shape", "Sigmoid", "Slice", "Softmax", "Softplus", "Split",
    "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
    # ... and elementwise or shape operators other exporters emit for the same layers.
    "Abs", "BatchNormalization", "CastLike", "Dropout", "Floor", "Gemm", "Greater", "Log",
    "Max", "Min", "Or", "RandomNormal", "RandomUniform", "RandomUniformLike", "Reciprocal",
    "ReduceMin", "Round", "Sign", "Sin", "Cos", "Size", "Tile", "Flatten",
})  # fmt: skip
"""Operators an uploaded ONNX voice may use: each costs time and memory in proportion to
its input's size, so the probe's one sentence says how the graph behaves on others."""

COMPILED_OPERATORS = VOICE_OPERATORS | {"If"}
"""Operators of a graph compiled here from a coqui checkpoint (its ``If`` is coqui's)."""


def check_onnx_model(path: Path, *, operators: frozenset[str] = VOICE_OPERATORS) -> set[str]:
    """Validate the ONNX file at ``path`` (made of ``operators`` only); return the names
    of its graph inputs."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidVoiceFiles("The model is not a readable ONNX file.", param="model") from exc
    if not model.graph.node:
        raise InvalidVoiceFiles("The ONNX model has an empty graph.", param="model")
    _check_inline_weights(model)
    _check_standard_operators(model)
    _check_allowed_operators(model, operators)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidVoiceFiles("The ONNX model is malformed.", param="model") from exc
    initializers = {init.name for init in model.graph.initializer}
    return {i.name for i in model.graph.input if i.name not in initializers}


def initialize_onnxruntime() -> None:
    """Create one trivial session so onnxruntime's process-wide environment exists."""
    import numpy as np
    import onnxruntime

    tensor = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [tensor],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    session.run(None, {"x": np.zeros(1, dtype=np.float32)})


def _subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        yield from _subgraphs_of(node)


def _subgraphs_of(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield from _subgraphs(attribute.g)
        for subgraph in attribute.graphs:
            yield from _subgraphs(subgraph)


def _nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: of the graph, of its subgraphs, and of the model's local functions
    (and their subgraphs), which onnxruntime inlines where they are called."""
    for graph in _subgraphs(model.graph):
        yield from graph.node
    for function in model.functions:
        for node in function.node:
            yield node
            for subgraph in _subgraphs_of(node):
                yield from subgraph.node


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for graph in _subgraphs(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in _nodes(model):
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            sparse_tensors = [*attribute.sparse_tensors]
            if attribute.HasField("sparse_tensor"):
                sparse_tensors.append(attribute.sparse_tensor)
            for sparse in sparse_tensors:
                yield sparse.values
                yield sparse.indices


def _check_inline_weights(model: onnx.ModelProto) -> None:
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidVoiceFiles(
                "The ONNX model references external data files; weights must be inline.",
                param="model",
            )


def _check_standard_operators(model: onnx.ModelProto) -> None:
    domains = {opset.domain for opset in model.opset_import}
    domains |= {node.domain for node in _nodes(model)}
    domains |= {function.domain for function in model.functions}
    custom = sorted(domains - STANDARD_DOMAINS)
    if custom:
        raise InvalidVoiceFiles(
            f"The ONNX model uses non-standard operator domains {custom}.", param="model"
        )


def _check_allowed_operators(model: onnx.ModelProto, operators: frozenset[str]) -> None:
    used = {node.op_type for node in _nodes(model)}
    refused = sorted(used - operators)
    if refused:
        raise InvalidVoiceFiles(
            f"The ONNX model uses operators a Piper or VITS voice does not: {refused[:8]}.",
            param="model",
        )
