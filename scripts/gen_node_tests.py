#!/usr/bin/env python3
"""Write the ONNX backend *node* tests into a folder.

Usage: gen_node_tests.py STAGING_ROOT

Writes STAGING_ROOT/node/<test_name>/{model.onnx,test_data_set_0/{input,output}_<i>.pb}
(the onnx backend-test layout). Meant to be run by scripts/gen-node-tests.sh inside the
venv that pins onnx; it is not a general tool.

Recent onnx wheels no longer ship onnx/backend/test/data/node, and
onnx.backend.test.cmd_tools.generate_data only collects the *model* test cases
("real"/"simple"). Its writer, however, handles every kind of input/output
(tensors, sequences, maps, optionals), so we reuse it unchanged and only hand it
the node test cases from onnx.backend.test.case.node.collect_testcases().
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("staging_root", help="folder to write node/<test_name>/ into")
    args = parser.parse_args()

    # The test-case code computes some expected outputs that are deliberately
    # inf/nan (e.g. reduce over empty axes, overflowing casts); numpy warns about
    # them. They are expected, so keep the output quiet.
    warnings.filterwarnings(
        "ignore", category=RuntimeWarning, module=r"onnx\.backend\.test\.case\..*"
    )

    import onnx
    from onnx.backend.test import cmd_tools
    from onnx.backend.test.case.node import collect_testcases

    # op_type=None (the default) collects every node test, ai.onnx.ml ones included.
    cases = [c for c in collect_testcases() if c.kind == "node"]
    if not cases:
        print("gen_node_tests.py: onnx collected no node test cases", file=sys.stderr)
        return 1
    names = [c.name for c in cases]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        print(f"gen_node_tests.py: duplicate test names: {dups}", file=sys.stderr)
        return 1

    # generate_data() looks up `model_test.collect_testcases` in its own module
    # globals and writes <output>/<case.kind>/<case.name>/.
    cmd_tools.model_test = types.SimpleNamespace(collect_testcases=lambda: cases)
    cmd_tools.generate_data(argparse.Namespace(output=args.staging_root))

    # Sanity check of what was written.
    node_dir = os.path.join(args.staging_root, "node")
    bad = []
    for name in names:
        d = os.path.join(node_dir, name)
        ds = os.path.join(d, "test_data_set_0")
        if not (
            os.path.isfile(os.path.join(d, "model.onnx"))
            and os.path.isfile(os.path.join(ds, "output_0.pb"))
        ):
            bad.append(name)
    if bad:
        print(f"gen_node_tests.py: incomplete test folders: {bad}", file=sys.stderr)
        return 1

    print(f"gen_node_tests.py: onnx {onnx.__version__}: wrote {len(cases)} node tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
