#!/usr/bin/env python3
"""Times a model on onnxruntime CPU (default: 1 thread) on its test_data_set_0 inputs:
the peer figure for `optc bench --backend reference`. Needs `onnxruntime` in the venv:
    .venv/bin/pip install onnxruntime==1.32.0
    .venv/bin/python scripts/ort-bench.py ../shared/models/resnet18 [--threads 1] [--runs 20]
"""
import argparse, glob, os, statistics, time

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("model_dir")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--runs", type=int, default=20)
args = ap.parse_args()

opts = ort.SessionOptions()
opts.intra_op_num_threads = args.threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(os.path.join(args.model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
feeds = {}
for i, inp in enumerate(sess.get_inputs()):
    t = onnx.TensorProto()
    with open(os.path.join(args.model_dir, "test_data_set_0", f"input_{i}.pb"), "rb") as f:
        t.ParseFromString(f.read())
    feeds[inp.name] = onnx.numpy_helper.to_array(t)
for _ in range(3):
    sess.run(None, feeds)
times = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    sess.run(None, feeds)
    times.append((time.perf_counter() - t0) * 1e3)
print(f"{os.path.basename(os.path.normpath(args.model_dir))}: onnxruntime {ort.__version__} "
      f"{args.threads} thread(s): median {statistics.median(times):.2f} ms, min {min(times):.2f} ms over {args.runs} runs")
