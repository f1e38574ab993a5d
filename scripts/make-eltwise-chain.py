"""Writes scripts/data/eltwise_chain.onnx: y = tanh(relu(x * 1.5 + 0.25) * 0.5 - 0.125) + x on a
float[16, 4194304] input (256 MiB). Fused by optc -O2 into one kernel that reads x once and writes
y once, so its device time measures memory bandwidth (scripts/gpu-check.sh compares it with a
torch device-to-device copy of the same bytes). Needs the `onnx` package (scripts/test.sh's .venv).
"""

import sys

import onnx
from onnx import TensorProto, helper

SHAPE = [16, 4194304]


def scalar(name, value):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def main(out):
    nodes = [
        helper.make_node("Mul", ["x", "c_scale"], ["t0"]),
        helper.make_node("Add", ["t0", "c_shift"], ["t1"]),
        helper.make_node("Relu", ["t1"], ["t2"]),
        helper.make_node("Mul", ["t2", "c_half"], ["t3"]),
        helper.make_node("Sub", ["t3", "c_eighth"], ["t4"]),
        helper.make_node("Tanh", ["t4"], ["t5"]),
        helper.make_node("Add", ["t5", "x"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "eltwise_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
        [
            scalar("c_scale", 1.5),
            scalar("c_shift", 0.25),
            scalar("c_half", 0.5),
            scalar("c_eighth", 0.125),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scripts/data/eltwise_chain.onnx")
