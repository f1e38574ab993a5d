#!/usr/bin/env python3
"""Rewrites a model for wonnx (the peer in issue 3's comparison): every Gemm with transB=1 and
an initializer B gets B transposed and transB=0 (wonnx 0.5 refuses transB=1). Then run wonnx's
own shape inference and benchmark:
    .venv/bin/python scripts/wonnx-prepare.py ../shared/models/resnet18/model.onnx /tmp/r.onnx
    nnx prepare -i /tmp/r.onnx /tmp/r2.onnx --set batch=1
    nnx infer /tmp/r2.onnx -i input=IMAGE.png --benchmark
(`nnx` is `cargo install wonnx-cli --version 0.5.1`; IMAGE any 224×224 RGB PNG.)
"""
import sys

import onnx
from onnx import numpy_helper

m = onnx.load(sys.argv[1])
inits = {t.name: t for t in m.graph.initializer}
for n in m.graph.node:
    if n.op_type != "Gemm":
        continue
    tb = [a for a in n.attribute if a.name == "transB"]
    if not tb or tb[0].i != 1 or n.input[1] not in inits:
        continue
    t = inits[n.input[1]]
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).T.copy(), t.name))
    tb[0].i = 0
onnx.save(m, sys.argv[2])
