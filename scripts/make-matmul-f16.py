"""Writes scripts/data/matmul_f16_4096.onnx: y = a @ b on float16[4096, 4096] inputs (no
weights, a few hundred bytes). optc compiles it for sm_XX to the tensor-core (mma.sync) MatMul
template; scripts/gpu-check.sh times it against torch.matmul on the same device (the issue's
f16 GEMM 4096^3 goal). Needs the `onnx` package (scripts/test.sh's .venv).
"""

import sys

import onnx
from onnx import TensorProto, helper

N = 4096


def main(out):
    t = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT16, [N, N])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "matmul_f16",
        [t("a"), t("b")],
        [t("y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scripts/data/matmul_f16_4096.onnx")
