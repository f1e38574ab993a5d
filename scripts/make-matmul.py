#!/usr/bin/env python3
"""Writes an N×N×N f32 MatMul model (weights as an initializer) for GEMM benchmarks:
    .venv/bin/python scripts/make-matmul.py 1024 /tmp/mm1024.onnx
    optc bench /tmp/mm1024.onnx --target wgsl      # GFLOP/s = 2·N³ / median
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
out = sys.argv[2] if len(sys.argv) > 2 else f"mm{n}.onnx"
a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
w = numpy_helper.from_array(np.random.RandomState(0).randn(n, n).astype(np.float32), "w")
g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "mm", [a], [y], [w])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), out)
print(out)
