#!/usr/bin/env python3
"""Writes an 8-op elementwise chain over N f32 elements (default 16M), the fusion benchmark:
    .venv/bin/python scripts/make-chain.py 16777216 /tmp/chain8.onnx
    optc bench /tmp/chain8.onnx --target wgsl --compare O0    # fused (-O2) vs one kernel per op
"""
import sys

import onnx
from onnx import TensorProto, helper

n = int(sys.argv[1]) if len(sys.argv) > 1 else 16 << 20
out = sys.argv[2] if len(sys.argv) > 2 else "chain8.onnx"
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])
half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
nodes = [
    helper.make_node("Mul", ["x", "half"], ["t1"]),
    helper.make_node("Add", ["t1", "half"], ["t2"]),
    helper.make_node("Relu", ["t2"], ["t3"]),
    helper.make_node("Sigmoid", ["t3"], ["t4"]),
    helper.make_node("Mul", ["t4", "x"], ["t5"]),
    helper.make_node("Neg", ["t5"], ["t6"]),
    helper.make_node("Abs", ["t6"], ["t7"]),
    helper.make_node("Sub", ["t7", "half"], ["y"]),
]
g = helper.make_graph(nodes, "chain8", [x], [y], [half])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), out)
print(out)
