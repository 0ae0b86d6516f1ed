"""Tiny hand-built ONNX models for validation tests (hostile and broken voices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PIPER_INPUTS = [
    helper.make_tensor_value_info("input", TensorProto.INT64, [1, None]),
    helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
    helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
]


def _model(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    *,
    opsets: list[onnx.OperatorSetIdProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "voice",
        PIPER_INPUTS,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, None])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def piper_shaped_model() -> onnx.ModelProto:
    """Takes Piper's inputs and returns a float tensor: standard, valid, inline weights."""
    weight = numpy_helper.from_array(np.full(1, 0.01, dtype=np.float32), "weight")
    return _model(
        [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["as_float", "weight"], ["output"]),
        ],
        [weight],
    )


def external_data_model() -> onnx.ModelProto:
    """Its weight points at a file outside the upload: must be refused unopened."""
    model = piper_shaped_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model


def custom_operator_model() -> onnx.ModelProto:
    """Uses an operator from a non-standard domain (would need native code to run)."""
    return _model(
        [helper.make_node("Evil", ["input"], ["output"], domain="com.example.evil")],
        [],
        opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.evil", 1)],
    )


def failing_at_run_model() -> onnx.ModelProto:
    """Passes every static check but fails inside onnxruntime when run."""
    shape = numpy_helper.from_array(np.array([7, -1, 3], dtype=np.int64), "bad_shape")
    return _model(
        [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["as_float", "bad_shape"], ["output"]),
        ],
        [shape],
    )


def looping_model() -> onnx.ModelProto:
    """A ``Loop`` whose trip count is the input's length: cheap for the probe's sentence,
    unbounded for a long one. Valid ONNX; refused by the operator allow-list."""
    one = numpy_helper.from_array(np.ones(1, dtype=np.float32), "one")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["x_in", "one"], ["x_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1, None]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1, None]),
        ],
    )
    return _model(
        [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Squeeze", ["input_lengths"], ["trips"]),
            helper.make_node("Loop", ["trips", "", "as_float"], ["output"], body=body),
        ],
        [one],
    )


def external_data_in_function_model() -> onnx.ModelProto:
    """The graph calls a local function whose ``Constant`` points at a file outside the
    upload: the external-data check must look inside functions too."""
    tensor = numpy_helper.from_array(np.full(1, 0.01, dtype=np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "4")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    scale = helper.make_function(
        "", "Scale", ["x"], ["y"],
        [helper.make_node("Constant", [], ["w"], value=tensor),
         helper.make_node("Mul", ["x", "w"], ["y"])],
        opset_imports=[helper.make_opsetid("", 17)],
    )  # fmt: skip
    model = _model(
        [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Scale", ["as_float"], ["output"], domain=""),
        ],
        [],
    )
    model.functions.append(scale)
    return model
