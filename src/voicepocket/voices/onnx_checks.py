"""Static checks on an untrusted ONNX file, done before onnxruntime ever opens it.

A model may only use standard operators (custom domains would need native code we do not
ship) and must carry all its weights inline: an external-data reference is a path chosen
by the uploader, i.e. a way to make the server read its own files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from voicepocket.errors import InvalidVoiceFiles

STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


def check_onnx_model(path: Path) -> set[str]:
    """Validate the ONNX file at ``path``; return the names of its graph inputs."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidVoiceFiles("The model is not a readable ONNX file.", param="model") from exc
    if not model.graph.node:
        raise InvalidVoiceFiles("The ONNX model has an empty graph.", param="model")
    _check_inline_weights(model.graph)
    _check_standard_operators(model)
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
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _subgraphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _subgraphs(subgraph)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    for subgraph in _subgraphs(graph):
        yield from subgraph.initializer
        for sparse in subgraph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in subgraph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors


def _check_inline_weights(graph: onnx.GraphProto) -> None:
    for tensor in _tensors(graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidVoiceFiles(
                "The ONNX model references external data files; weights must be inline.",
                param="model",
            )


def _check_standard_operators(model: onnx.ModelProto) -> None:
    domains = {opset.domain for opset in model.opset_import}
    domains |= {node.domain for graph in _subgraphs(model.graph) for node in graph.node}
    if model.functions:
        domains |= {function.domain for function in model.functions}
    custom = sorted(domains - STANDARD_DOMAINS)
    if custom:
        raise InvalidVoiceFiles(
            f"The ONNX model uses non-standard operator domains {custom}.", param="model"
        )
