"""Writes scripts/data/conv3x3_f16.onnx: a float16 3x3 Conv (stride 1, pad 1, with bias) of
[8, 128, 28, 28] by [128, 128, 3, 3], a resnet stage-2 shape. optc runs it as an implicit GEMM
on tensor cores (the im2col matrix gathered into the shared-memory pipeline);
scripts/gpu-check.sh times it against torch.nn.functional.conv2d (cuDNN) on the same device.
Needs the `onnx` package (scripts/test.sh's .venv).
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N, C, H, W, K = 8, 128, 28, 28, 128


def main(out_dir):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(C * 9)).astype(np.float16)
    b = rng.standard_normal(K).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "conv3x3_f16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [N, C, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [N, K, H, W])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, f"{out_dir}/conv3x3_f16.onnx")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scripts/data")
