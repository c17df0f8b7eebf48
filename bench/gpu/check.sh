#!/usr/bin/env bash
# One prepared GPU check: card, synthetic models, the GPU tests, the GPU benchmarks, one table.
# Runs on a machine with CUDA (driver for CUDA 13), CMake and Python but none of our Debian
# packages and no network, from a build folder made on the development machine:
#
#   cmake --preset gpu-check
#   cmake --build build-gpu --target omnirt_tests omnirt_gpu_bench omnirt_cli
#   # carry the repo (with build-gpu/) to the GPU machine, then from the repo root:
#   bench/gpu/check.sh [build-gpu]
#
# Everything printed also goes to $OUT/check.txt when OUT is set. Budget: under 8 minutes.
set -u
BUILD=${1:-build-gpu}
BIN="$BUILD/bin"
MODELS=${OMNIRT_CHECK_MODELS:-${TMPDIR:-/tmp}/omnirt-gpu-check}
PRESET=${OMNIRT_CHECK_PRESET:-qwen2.5-7b}  # a smaller preset for dry runs
LOG=$(mktemp)
T0=$(date +%s)
stamp() { echo "-- [$(( $(date +%s) - T0 )) s] $*"; }

main() {

stamp "card"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory,power.limit --format=csv 2>&1 || echo "nvidia-smi failed"
nvidia-smi 2>&1 | sed -n '1,4p'

# cuBLAS is opened at run time (kernels/cuda/blas_loader.cpp); help it find the toolkit's copy.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import os, nvidia.cublas as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null); do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ls ${LD_LIBRARY_PATH//:/ } 2>/dev/null | grep -E '^libcublas(Lt)?\.so' | sort -u | tr '\n' ' '; echo

for b in omnirt_tests omnirt_gpu_bench omnirt; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: build it on the development machine (see the header)"; return 1; }
done
stamp "shared libraries the binaries need"
ldd "$BIN/omnirt_gpu_bench" | awk '{print "   ", $1, $2, $3}'

# The tests find fixtures through the source path compiled in; point it at this checkout.
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
if [ -n "$SRC" ] && [ ! -e "$SRC/tests/data" ] && [ "$SRC" != "$PWD" ]; then
  mkdir -p "$(dirname "$SRC")" 2>/dev/null && ln -sfn "$PWD" "$SRC" 2>/dev/null && echo "linked $SRC -> $PWD" ||
    echo "note: fixtures expected at $SRC are not there; golden tests will skip"
fi

stamp "synthetic models in $MODELS"
mkdir -p "$MODELS"
df -h "$MODELS" | tail -1
for t in q4_K q8_0 bf16; do
  f="$MODELS/$PRESET-$t.gguf"
  if [ ! -s "$f" ]; then
    s=$(date +%s)
    timeout 200 "$BIN/omnirt" model create --preset "$PRESET" --type "$t" --out "$f" > /dev/null ||
      echo "model create $t failed (rc $?)"
    echo "   $t: $(du -h "$f" 2>/dev/null | cut -f1) in $(( $(date +%s) - s )) s"
  fi
done

stamp "GPU tests (omnirt_tests --gtest_filter='Cuda*')"
timeout 240 "$BIN/omnirt_tests" --gtest_filter='Cuda*' --gtest_color=no > "$LOG.tests" 2>&1
rc=$?
grep -v -E '^\[ +(RUN|OK) +\]' "$LOG.tests" | head -300
echo "omnirt_tests rc=$rc (full log: $LOG.tests)"
[ -n "${OUT:-}" ] && cp "$LOG.tests" "$OUT/cuda_tests.txt"

stamp "benchmarks"
timeout 90 "$BIN/omnirt_gpu_bench" probe 2>&1 | tee -a "$LOG"
for t in bf16 q8_0 q4_K; do
  f="$MODELS/$PRESET-$t.gguf"
  [ -s "$f" ] || { echo "no model $f"; continue; }
  timeout 150 "$BIN/omnirt_gpu_bench" model --model "$f" --label "$t" --prefill 512 --steps 64 --batch 16 2>&1 | tee -a "$LOG"
done

# The previous prefill attention (f32 CUDA cores, OMNIRT_CUDA_PREFILL_ATTN=tiled), same run, for the
# A/B against the tensor-core kernel. (The V1 matvec and round-3 A/B rows of runs 1-5 decided the
# defaults now in place and are no longer run: docs/CUDA.md has their figures.)
f="$MODELS/$PRESET-bf16.gguf"
[ -s "$f" ] && OMNIRT_CUDA_PREFILL_ATTN=tiled timeout 120 "$BIN/omnirt_gpu_bench" model --model "$f" \
  --label bf16_tiledattn --prefill 512 --steps 4 --batch 1 2>&1 |
  grep -E '^(RESULT name=prefill|BREAKDOWN label=bf16_tiledattn prefill|ERROR)' | tee -a "$LOG"
# The separate q, k, v and gate, up GEMMs of the prefill (OMNIRT_CUDA_PREFILL_FUSED=0), for the A/B.
[ -s "$f" ] && OMNIRT_CUDA_PREFILL_FUSED=0 timeout 120 "$BIN/omnirt_gpu_bench" model --model "$f" \
  --label bf16_unfused --prefill 512 --steps 4 --batch 1 2>&1 |
  grep -E '^(RESULT name=prefill|BREAKDOWN label=bf16_unfused prefill|ERROR)' | tee -a "$LOG"

# Sub-commands registered by bench/gpu/*_gpu.cpp (the usage text lists them), with their defaults.
for c in $("$BIN/omnirt_gpu_bench" 2>&1 | awk 'NR > 1 { print $2 }'); do
  stamp "omnirt_gpu_bench $c"
  timeout 150 "$BIN/omnirt_gpu_bench" "$c" 2>&1 | tee -a "$LOG"
done

stamp "table"
python3 - "$LOG" <<'EOF'
import re, sys
res = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    kv = dict((m.group(1), m.group(2) if m.group(2) is not None else m.group(3))
              for m in re.finditer(r'(\w+)=(?:"([^"]*)"|(\S+))', line))
    res[kv["name"]] = kv
def f(name, key="value"):
    try:
        return float(res[name][key])
    except (KeyError, ValueError):
        return None
card = res.get("device", {}).get("card", "?")
bw = f("hbm_copy")            # GB/s
gemm = f("gemm_bf16")         # TFLOP/s
rows = []
def fmt(x, spec="%.3g"):
    return "-" if x is None else spec % x
rows.append(("HBM copy bandwidth (GB/s)", fmt(bw, "%.0f"), "-", "-", "probe"))
rows.append(("cuBLAS BF16 GEMM 8192^3 (TFLOP/s)", fmt(gemm, "%.0f"), "-", "-", "probe"))
for t, target in (("bf16", 0.85), ("q8_0", 0.70), ("q4_K", 0.70)):
    ms, by = f("decode1_" + t), f("decode1_" + t, "bytes")
    if ms is None:
        rows.append(("decode b1 %s (ms/step)" % t, "-", "-", "-", ">= %.2f" % target))
        continue
    gbs = by / (ms * 1e-3) / 1e9
    rows.append(("decode b1 %s: %.2f ms/step, %.0f GB/s" % (t, ms, gbs), "%.0f GB/s" % gbs, fmt(bw, "%.0f GB/s"),
                 fmt(gbs / bw if bw else None, "%.2f"), ">= %.2f" % target))
for t, what in (("q8_0_v1", "previous kernels (V1)"), ("q4_K_v1", "previous kernels (V1)"),
                ("bf16_r3", "round-3 kernels"), ("q8_0_r3", "round-3 kernels")):
    ms, by = f("decode1_" + t), f("decode1_" + t, "bytes")
    if ms is not None and by:
        gbs = by / (ms * 1e-3) / 1e9
        rows.append(("decode b1 %s, %s: %.2f ms" % (t.rsplit("_", 1)[0], what, ms),
                     "%.0f GB/s" % gbs, fmt(bw, "%.0f GB/s"), fmt(gbs / bw if bw else None, "%.2f"), "(A/B)"))
    b16 = f("decode16_" + t, "tok_s")
    if b16 is not None:
        rows.append(("batch 16 %s, %s (tok/s)" % (t.rsplit("_", 1)[0], what), "%.0f" % b16, "-", "-", "(A/B)"))
p = res.get("prefill512_bf16")
if p:
    tf = float(p["tflops"])
    rows.append(("prefill 512 bf16: %.1f ms" % float(p["value"]), "%.0f TFLOP/s" % tf, fmt(gemm, "%.0f TFLOP/s"),
                 fmt(tf / gemm if gemm else None, "%.2f"), ">= 0.60"))
for lab, what in (("tiledattn", "f32 tiled attention"), ("unfused", "separate q,k,v and gate,up GEMMs")):
    p, q = res.get("prefill512_bf16"), res.get("prefill512_bf16_" + lab)
    if p and q:
        rows.append(("prefill 512 bf16, %s (A/B)" % what, "%.1f ms" % float(q["value"]),
                     "default: %.1f ms" % float(p["value"]), "%.2f" % (float(q["value"]) / float(p["value"])), "(A/B)"))
for t in ("q8_0", "q4_K"):
    p = res.get("prefill512_" + t)
    if p:
        tf = float(p["tflops"])
        rows.append(("prefill 512 %s: %.1f ms" % (t, float(p["value"])), "%.0f TFLOP/s" % tf,
                     fmt(gemm, "%.0f TFLOP/s"), fmt(tf / gemm if gemm else None, "%.2f"), "(info)"))
for t in ("bf16", "q8_0", "q4_K"):
    b16, b1 = f("decode16_" + t, "tok_s"), f("decode1_" + t)
    if b16 is not None and b1:
        tps1 = 1e3 / b1
        rows.append(("batch 16 vs 1 %s (tok/s)" % t, "%.0f" % b16, "%.0f" % tps1, "%.1f" % (b16 / tps1), ">= 10"))
for t in ("bf16", "q8_0", "q4_K"):
    on, off, gpu = f("decode1_" + t), f("decode1_%s_nograph" % t), f("decode1_" + t, "gpu_ms")
    if on and gpu is not None:
        rows.append(("host overhead, graphs %s (1 - gpu/wall)" % t, "%.1f%%" % (100 * (1 - gpu / on)),
                     "no graphs: %.2f ms" % off if off else "-", "%.2f" % (off / on) if off else "-", "< 5%"))
# Other sub-commands (bench/gpu/*_gpu.cpp) give their own row: table="figure" [probe= ratio= target=].
for name, kv in res.items():
    if "table" in kv:
        rows.append((kv["table"], "%s %s" % (kv["value"], kv.get("unit", "")), kv.get("probe", "-"),
                     kv.get("ratio", "-"), kv.get("target", "(info)")))
w = [max(len(str(r[i])) for r in rows + [("figure", "measured", "probe", "ratio", "target")]) for i in range(5)]
print("card: %s" % card)
line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
print(line(("figure", "measured", "probe", "ratio", "target")))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(line(r))
errs = [l.strip() for l in open(sys.argv[1]) if l.startswith("ERROR")]
for e in errs:
    print(e)
EOF
stamp "done"
}

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  main 2>&1 | tee "$OUT/check.txt"
else
  main 2>&1
fi
