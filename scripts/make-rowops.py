"""Writes scripts/data/softmax_4096x1024.onnx (Softmax over the last axis) and
scripts/data/layernorm_4096x1024.onnx (LayerNormalization over the last axis, scale and bias
constant, eps 1e-5) on float32[4096, 1024] inputs. scripts/gpu-check.sh times optc's softmax and
layernorm kernels on them against torch.softmax / torch.nn.functional.layer_norm on the same
device. Needs the `onnx` package (scripts/test.sh's .venv).
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

R, C = 4096, 1024


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main(out_dir):
    t = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [R, C])
    save(
        helper.make_graph(
            [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
            "softmax",
            [t("x")],
            [t("y")],
        ),
        f"{out_dir}/softmax_4096x1024.onnx",
    )
    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(rng.standard_normal(C).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.standard_normal(C).astype(np.float32), "bias")
    save(
        helper.make_graph(
            [
                helper.make_node(
                    "LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5
                )
            ],
            "layernorm",
            [t("x")],
            [t("y")],
            initializer=[scale, bias],
        ),
        f"{out_dir}/layernorm_4096x1024.onnx",
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scripts/data")
