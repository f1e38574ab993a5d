#!/usr/bin/env bash
# CUDA checks for a lent GPU machine that has no Rust toolchain: build the release binary
# elsewhere (`cargo build --release -p optc-tools`) and carry target/release/optc along.
#
#   scripts/gpu-check.sh            # OPTC_BIN, OPTC_MODELS, GPU_CHECK_OUT, GPU_CHECK_BUDGET_S
#
# 1. `optc verify --target sm_90` on every shared model (with its test_data_set_0),
# 2. `optc bench --target sm_90` on resnet18 and bert_tiny, eager, with --cuda-graph and with
#    --allow-tf32 (GEMMs and convs on tf32 tensor cores, as torch runs convs by default),
# 3. torch on the same models (onnx2torch if installed, else onnxruntime-gpu, else torchvision's
#    resnet18 architecture; otherwise skipped with the reason printed): device-resident eager
#    latency and end-to-end latency with host copies,
# 4. bandwidth of a fused elementwise chain (scripts/data/eltwise_chain.onnx, 256 MiB in and
#    out) against a torch device-to-device copy of the same bytes,
# 5. f16 GEMM 4096^3 (scripts/data/matmul_f16_4096.onnx, the tensor-core mma.sync template)
#    against torch.matmul on the same device,
#    and an f16 3x3 conv (scripts/data/conv3x3_f16.onnx: the implicit GEMM on tensor cores)
#    against torch.nn.functional.conv2d (cuDNN),
# 6. softmax and layernorm over float32[4096, 1024] (scripts/data/*_4096x1024.onnx) against
#    torch.softmax / F.layer_norm, and torch.compile of the benched models (compile time and
#    latency; GPU_CHECK_TORCH_COMPILE=0 skips it),
# 7. `optc conformance --backend cuda` on the ONNX node tests (OPTC_NODE_TESTS, or
#    .gpu/onnx-node.tgz from scripts/gpu-prepare.sh, unpacked into the results folder),
# then prints one table. Every step has a timeout inside an overall budget (default 450 s), so
# the script ends well under 8 minutes. On a machine without a GPU it still runs: every optc
# step exits 3 ("no CUDA driver") and the torch steps are skipped, which dry-runs the script.
set -uo pipefail
cd "$(dirname "$0")/.."

# scripts/gpu-prepare.sh leaves a stripped binary (the device tool carries 64 MiB at most).
if [ -z "${OPTC_BIN:-}" ] && [ -x .gpu/optc ]; then OPTC_BIN=.gpu/optc; fi
OPTC=${OPTC_BIN:-target/release/optc}
BUDGET=${GPU_CHECK_BUDGET_S:-450}
OUT=${GPU_CHECK_OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
TARGET=${GPU_CHECK_TARGET:-sm_90}
mkdir -p "$OUT"

MODELS=${OPTC_MODELS:-}
if [ -z "$MODELS" ]; then
    for d in ../shared/models shared/models; do
        if [ -d "$d" ]; then MODELS=$d; break; fi
    done
fi
if [ ! -x "$OPTC" ]; then
    echo "gpu-check: $OPTC is not an executable (set OPTC_BIN)" >&2
    exit 2
fi
if [ -z "$MODELS" ] || [ ! -d "$MODELS" ]; then
    echo "gpu-check: no models folder (set OPTC_MODELS; tried ../shared/models and shared/models)" >&2
    exit 2
fi
PY=$(command -v python3 || command -v python || true)

echo "gpu-check: optc $("$OPTC" --version 2>/dev/null), models $MODELS, target $TARGET, results $OUT"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
else
    echo "gpu-check: nvidia-smi not found"
fi

# step NAME TIMEOUT CMD...: stdout to $OUT/NAME.json, stderr to $OUT/NAME.err, status to
# $OUT/NAME.rc (124 = timed out, "skip" = no budget left).
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo skip >"$OUT/$name.rc"
        echo "  $name: skipped (budget spent)"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
    local rc=$?
    echo "$rc" >"$OUT/$name.rc"
    echo "  $name: exit $rc in $((SECONDS - t0)) s$( [ "$rc" -ne 0 ] && echo ": $(tail -c 300 "$OUT/$name.err" | tr '\n' ' ')")"
}

echo "== verify ($TARGET)"
names=()
for m in "$MODELS"/*/; do
    m=${m%/}
    [ -f "$m/model.onnx" ] || continue
    n=$(basename "$m")
    names+=("$n")
    data=()
    [ -d "$m/test_data_set_0" ] && data=(--data "$m/test_data_set_0")
    step "verify_$n" 90 "$OPTC" verify "$m" --target "$TARGET" "${data[@]}" --json
done

echo "== bench ($TARGET)"
bench_models=()
for n in resnet18 bert_tiny; do
    m=$MODELS/$n
    [ -f "$m/model.onnx" ] || { echo "  $n: not in $MODELS"; continue; }
    bench_models+=("$n")
    inputs=()
    [ -d "$m/test_data_set_0" ] && inputs=(--inputs "$m/test_data_set_0")
    # The manifest (input names, shapes, dtypes) for the torch side.
    step "compile_$n" 60 "$OPTC" compile "$m" --target "$TARGET" -o "$OUT/$n.optc" --emit-dir "$OUT/$n.kernels" --json
    step "bench_$n" 90 "$OPTC" bench "$m" --target "$TARGET" --runs 50 "${inputs[@]}" --json
    step "bench_graph_$n" 90 "$OPTC" bench "$m" --target "$TARGET" --runs 50 --cuda-graph "${inputs[@]}" --json
    # torch runs convs (cudnn.allow_tf32) on tf32 by default: the like-for-like optc figure.
    step "bench_tf32_$n" 90 "$OPTC" bench "$m" --target "$TARGET" --runs 50 --allow-tf32 "${inputs[@]}" --json
done
echo "== elementwise chain"
step bench_eltwise 90 "$OPTC" bench scripts/data/eltwise_chain.onnx --target "$TARGET" --runs 20 --json
echo "== f16 GEMM 4096^3"
step bench_gemm_f16 90 "$OPTC" bench scripts/data/matmul_f16_4096.onnx --target "$TARGET" --runs 20 --json
echo "== f16 conv 3x3 [8,128,28,28]"
step bench_conv_f16 60 "$OPTC" bench scripts/data/conv3x3_f16.onnx --target "$TARGET" --runs 20 --json
echo "== softmax, layernorm 4096x1024"
step bench_softmax 60 "$OPTC" bench scripts/data/softmax_4096x1024.onnx --target "$TARGET" --runs 20 --json
step bench_layernorm 60 "$OPTC" bench scripts/data/layernorm_4096x1024.onnx --target "$TARGET" --runs 20 --json
echo "== conformance (node tests, CUDA)"
NODE=${OPTC_NODE_TESTS:-}
if [ -z "$NODE" ] && [ -f .gpu/onnx-node.tgz ]; then
    tar -xzf .gpu/onnx-node.tgz -C "$OUT" && NODE="$OUT/onnx-node"
fi
if [ -n "$NODE" ] && [ -d "$NODE" ]; then
    step conformance 150 "$OPTC" conformance "$NODE" --backend cuda --json
else
    echo "  conformance: skipped (no node tests: set OPTC_NODE_TESTS or run scripts/gpu-prepare.sh)"
fi

if [ -z "$PY" ]; then
    echo "gpu-check: no python: torch comparison and table skipped; raw results in $OUT"
    exit 0
fi

echo "== torch"
cat >"$OUT/torch_side.py" <<'PYEOF'
"""Torch (or onnxruntime-gpu) latency for the benched models and a device-to-device copy."""
import json, os, sys, time

out, models_dir = sys.argv[1], sys.argv[2]
names = sys.argv[3:]
res = {"models": {}, "copy": None, "notes": []}


def save():
    with open(os.path.join(out, "torch.json"), "w") as f:
        json.dump(res, f, indent=1)


try:
    import numpy as np
    import torch
except Exception as e:  # noqa: BLE001
    res["notes"].append(f"torch not importable ({type(e).__name__}: {e}): torch columns skipped")
    save()
    sys.exit(0)
if not torch.cuda.is_available():
    res["notes"].append("torch.cuda.is_available() is False: torch columns skipped")
    save()
    sys.exit(0)
dev = torch.device("cuda")
res["notes"].append(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")

DT = {"f32": torch.float32, "f16": torch.float16, "i64": torch.int64, "i32": torch.int32,
      "bool": torch.bool, "u8": torch.uint8, "i8": torch.int8}


def inputs_of(name):
    man = json.load(open(os.path.join(out, f"{name}.kernels", "manifest.json")))
    xs = []
    for i in man["inputs"]:
        dt = DT.get(i["dtype"], torch.float32)
        shape = i["shape"]
        if dt.is_floating_point:
            xs.append(torch.randn(shape, dtype=dt))
        elif dt == torch.bool:
            xs.append(torch.ones(shape, dtype=dt))
        else:  # token ids / masks: ones are valid for both
            xs.append(torch.ones(shape, dtype=dt))
    return [i["name"] for i in man["inputs"]], xs


def timed(fn, runs=50, warm=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def torch_module(name, path):
    try:
        import onnx2torch  # noqa: F401
        return onnx2torch.convert(path).to(dev).eval(), "onnx2torch (same graph and weights)"
    except Exception as e:  # noqa: BLE001
        why = f"onnx2torch: {type(e).__name__}: {str(e)[:80]}"
    if name == "resnet18":
        try:
            import torchvision
            return torchvision.models.resnet18().to(dev).eval(), f"torchvision resnet18 (same architecture, random weights; {why})"
        except Exception as e:  # noqa: BLE001
            why += f"; torchvision: {type(e).__name__}"
    return None, why


for name in names:
    path = os.path.join(models_dir, name, "model.onnx")
    row = {}
    try:
        in_names, xs = inputs_of(name)
    except Exception as e:  # noqa: BLE001
        res["models"][name] = {"note": f"no manifest ({e})"}
        continue
    mod, how = torch_module(name, path)
    if mod is not None:
        with torch.inference_mode():
            dx = [x.to(dev) for x in xs]
            row["eager_device_ms"] = timed(lambda: mod(*dx))
            def e2e():
                y = mod(*[x.to(dev) for x in xs])
                ys = y if isinstance(y, (list, tuple)) else [y]
                return [t.cpu() for t in ys]
            row["eager_e2e_ms"] = timed(e2e)
        row["how"] = "torch eager via " + how
    else:
        try:
            import onnxruntime as ort
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("no CUDAExecutionProvider")
            s = ort.InferenceSession(path, providers=["CUDAExecutionProvider"])
            feed = {n: x.numpy() for n, x in zip(in_names, xs)}
            row["ort_e2e_ms"] = timed(lambda: s.run(None, feed), runs=50, warm=10)
            row["how"] = f"onnxruntime-gpu {ort.__version__} CUDA EP (torch eager impossible: {how})"
        except Exception as e:  # noqa: BLE001
            row["how"] = f"skipped: {how}; onnxruntime-gpu: {type(e).__name__}: {str(e)[:80]}"
    res["models"][name] = row
    save()

# Device-to-device copy of the elementwise chain's bytes (read 256 MiB + write 256 MiB).
n = 16 * 4194304
x = torch.randn(n, device=dev)
y = torch.empty_like(x)
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
for _ in range(5):
    y.copy_(x)
ms = []
for _ in range(20):
    start.record()
    y.copy_(x)
    end.record()
    end.synchronize()
    ms.append(start.elapsed_time(end))
ms.sort()
res["copy"] = {"bytes": 2 * n * 4, "ms": ms[len(ms) // 2]}
save()

# f16 GEMM 4096^3 (torch.matmul: cuBLAS tensor cores).
del x, y
a = torch.randn(4096, 4096, device=dev, dtype=torch.float16)
b = torch.randn(4096, 4096, device=dev, dtype=torch.float16)
for _ in range(5):
    c = a @ b
ms = []
for _ in range(20):
    start.record()
    c = a @ b
    end.record()
    end.synchronize()
    ms.append(start.elapsed_time(end))
ms.sort()
res["gemm_f16"] = {"flops": 2 * 4096**3, "ms": ms[len(ms) // 2]}
save()


def event_ms(fn, runs=20, warm=5):
    for _ in range(warm):
        fn()
    ms = []
    for _ in range(runs):
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    ms.sort()
    return ms[len(ms) // 2]


# Softmax and LayerNorm over float32[4096, 1024], as scripts/data/*_4096x1024.onnx.
del a, b, c
# The f16 3x3 conv of scripts/data/conv3x3_f16.onnx (cuDNN; same shapes, bias, pad 1).
xc = torch.randn(8, 128, 28, 28, device=dev, dtype=torch.float16)
wc = torch.randn(128, 128, 3, 3, device=dev, dtype=torch.float16) / 34.0
bc = torch.randn(128, device=dev, dtype=torch.float16)
res["conv_f16"] = {"flops": 2 * 8 * 128 * 28 * 28 * 128 * 9,
                   "ms": event_ms(lambda: torch.nn.functional.conv2d(xc, wc, bc, padding=1))}
del xc, wc, bc
xr = torch.randn(4096, 1024, device=dev)
g, beta = torch.randn(1024, device=dev), torch.randn(1024, device=dev)
res["softmax_ms"] = event_ms(lambda: torch.softmax(xr, dim=-1))
res["layernorm_ms"] = event_ms(
    lambda: torch.nn.functional.layer_norm(xr, (1024,), g, beta, 1e-5))
save()

# torch.compile of the benched models (first call compiles; then device-resident latency).
if os.environ.get("GPU_CHECK_TORCH_COMPILE", "1") != "0":
    deadline = time.time() + float(os.environ.get("GPU_CHECK_TORCH_COMPILE_S", "150"))
    for name in names:
        if time.time() > deadline:
            res["models"].setdefault(name, {})["compile_note"] = "skipped: torch.compile budget spent"
            continue
        try:
            path = os.path.join(models_dir, name, "model.onnx")
            _, xs = inputs_of(name)
            mod, how = torch_module(name, path)
            if mod is None:
                raise RuntimeError(how)
            with torch.inference_mode():
                dx = [x.to(dev) for x in xs]
                cm = torch.compile(mod)
                t0 = time.time()
                cm(*dx)
                torch.cuda.synchronize()
                row = res["models"].setdefault(name, {})
                row["compile_s"] = time.time() - t0
                row["compiled_device_ms"] = timed(lambda: cm(*dx))
        except Exception as e:  # noqa: BLE001
            res["models"].setdefault(name, {})["compile_note"] = f"{type(e).__name__}: {str(e)[:80]}"
        save()
save()
PYEOF
step torch_side 200 "$PY" "$OUT/torch_side.py" "$OUT" "$MODELS" "${bench_models[@]}"

cat >"$OUT/report.py" <<'PYEOF'
import json, os, sys

out = sys.argv[1]
names, bench = sys.argv[2].split(), sys.argv[3].split()


def load(name):
    try:
        rc = open(os.path.join(out, name + ".rc")).read().strip()
    except OSError:
        return None, None
    try:
        return rc, json.load(open(os.path.join(out, name + ".json")))
    except (OSError, ValueError):
        return rc, None


def why(name):
    try:
        lines = [l for l in open(os.path.join(out, name + ".err")).read().splitlines() if l.strip()]
        return lines[-1][:110] if lines else ""
    except OSError:
        return ""


def f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


rows = [("check", "model", "result", "details")]
for n in names:
    rc, v = load("verify_" + n)
    if v and "outputs" in v:
        worst = max((o.get("max_abs_err") or 0) for o in v["outputs"])
        rows.append(("verify", n, "ok" if v["ok"] else "MISMATCH", f"max abs err {worst:.2e} on {v.get('device')}"))
    else:
        rows.append(("verify", n, f"exit {rc}", why("verify_" + n)))
try:
    torch = json.load(open(os.path.join(out, "torch.json")))
except (OSError, ValueError):
    torch = {"models": {}, "copy": None, "notes": ["torch step did not report"]}
for n in bench:
    rc, v = load("bench_" + n)
    rcg, g = load("bench_graph_" + n)
    rct, tv = load("bench_tf32_" + n)
    rows.append(("bench tf32", n, f"{tv['median_ms']:.3f} ms" if tv else f"exit {rct}",
                 f"--allow-tf32, device {f(tv.get('device_ms'))} ms" if tv else why("bench_tf32_" + n)))
    if not v:
        rows.append(("bench", n, f"exit {rc}", why("bench_" + n)))
        continue
    t = torch["models"].get(n, {})
    torch_ms = t.get("eager_e2e_ms") or t.get("ort_e2e_ms")
    rows.append(("bench", n, f"{v['median_ms']:.3f} ms",
                 f"device {f(v.get('device_ms'))} ms, graph {f(g and g.get('median_ms'))} ms "
                 f"(device {f(g and g.get('device_ms'))}), JIT {f(v.get('jit_ms'), '{:.1f}')} ms, "
                 f"{v['launches']} launches"))
    if torch_ms:
        rows.append(("torch", n, f"{torch_ms:.3f} ms",
                     f"device-resident {f(t.get('eager_device_ms'))} ms; optc/torch end-to-end "
                     f"{v['median_ms'] / torch_ms:.2f}x; {t.get('how', '')[:70]}"))
    else:
        rows.append(("torch", n, "skipped", t.get("how", "no result")[:110]))
    if t.get("compiled_device_ms"):
        rows.append(("torch.compile", n, f"{t['compiled_device_ms']:.3f} ms",
                     f"device-resident, compiled in {t['compile_s']:.0f} s; optc device "
                     f"{f(v.get('device_ms'))} ms"))
    elif t.get("compile_note"):
        rows.append(("torch.compile", n, "skipped", t["compile_note"][:110]))
rc, e = load("bench_eltwise")
if e and e.get("device_ms"):
    nbytes = 2 * 16 * 4194304 * 4
    gbs = nbytes / (e["device_ms"] * 1e-3) / 1e9
    c = torch.get("copy")
    if c:
        cgbs = c["bytes"] / (c["ms"] * 1e-3) / 1e9
        rows.append(("bandwidth", "eltwise_chain", f"{gbs:.0f} GB/s",
                     f"torch d2d copy {cgbs:.0f} GB/s -> {gbs / cgbs:.2f} of copy; {e['launches']} launch(es)"))
    else:
        rows.append(("bandwidth", "eltwise_chain", f"{gbs:.0f} GB/s", "torch copy skipped"))
else:
    rows.append(("bandwidth", "eltwise_chain", f"exit {rc}", why("bench_eltwise")))
rc, e = load("bench_gemm_f16")
if e and e.get("device_ms"):
    tflops = 2 * 4096**3 / (e["device_ms"] * 1e-3) / 1e12
    g = torch.get("gemm_f16")
    if g:
        ttf = g["flops"] / (g["ms"] * 1e-3) / 1e12
        rows.append(("gemm", "f16 4096^3", f"{tflops:.1f} TFLOP/s",
                     f"torch.matmul {ttf:.1f} TFLOP/s -> {tflops / ttf:.2f} of torch (goal 0.60)"))
    else:
        rows.append(("gemm", "f16 4096^3", f"{tflops:.1f} TFLOP/s", "torch matmul skipped"))
else:
    rows.append(("gemm", "f16 4096^3", f"exit {rc}", why("bench_gemm_f16")))
rc, e = load("bench_conv_f16")
if e and e.get("device_ms"):
    tflops = 2 * 8 * 128 * 28 * 28 * 128 * 9 / (e["device_ms"] * 1e-3) / 1e12
    cv = torch.get("conv_f16")
    rows.append(("conv", "f16 3x3 [8,128,28,28]", f"{tflops:.1f} TFLOP/s",
                 f"torch conv2d {cv['ms']:.3f} ms -> optc/torch {e['device_ms'] / cv['ms']:.2f}x"
                 if cv else "torch conv2d skipped"))
else:
    rows.append(("conv", "f16 3x3 [8,128,28,28]", f"exit {rc}", why("bench_conv_f16")))
for op in ("softmax", "layernorm"):
    rc, e = load("bench_" + op)
    if e and e.get("device_ms"):
        tm = torch.get(op + "_ms")
        rows.append((op, "4096x1024", f"{e['device_ms']:.3f} ms",
                     f"torch {tm:.3f} ms -> optc/torch {e['device_ms'] / tm:.2f}x" if tm
                     else "torch skipped"))
    else:
        rows.append((op, "4096x1024", f"exit {rc}", why("bench_" + op)))
rc, c = load("conformance")
if c:
    rows.append(("conformance", "node tests", f"{c.get('passed')} passed",
                 f"{c.get('failed')} failed, {c.get('skipped')} skipped (backend cuda)"))
elif rc is not None:
    rows.append(("conformance", "node tests", f"exit {rc}", why("conformance")))
w = [max(len(str(r[i])) for r in rows) for i in range(3)]
print()
for r in rows:
    print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
for note in torch.get("notes", []):
    print("note:", note)
PYEOF
"$PY" "$OUT/report.py" "$OUT" "${names[*]}" "${bench_models[*]}"
echo "gpu-check: done in $SECONDS s (results in $OUT)"
