#!/usr/bin/env bash
# Measure every quality number the tests bound (see the `measured` fixture in conftest.py) over seeds and over the CPU
# kernels other processors would run, so a bound can be set below all of them with a margin:
#
#     bash tests/measure_bounds.sh [out.jsonl] [pytest args...]    # default: every test in tests/
#
# Kernel sets: PyTorch's own (ATEN_CPU_CAPABILITY), MKL's (MKL_ENABLE_INSTRUCTIONS) and oneDNN's (ONEDNN_MAX_CPU_ISA)
# forced to AVX-512, AVX2 and plain SSE, and one thread instead of two. A machine without AVX-512 reproduces the AVX2
# row exactly (the hard-negative test's 0.547 on such a machine was the AVX2 row's number here).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bounds.jsonl}"; shift || true
targets=("${@:-tests}")
run() { echo "== $*"; env "$@" DALLE2_TEST_MEASUREMENTS="$out" python -m pytest -q -p no:cacheprovider -o addopts="-m 'not slow'" "${targets[@]}" | tail -2; }
for seed in 0 1 2; do run DALLE2_TEST_SEED=$seed; done
run ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
run ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41
run OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$out" <<'PY'
import collections, json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ranges = collections.defaultdict(list)
for r in rows:
    ranges[r["test"].split("[")[0], r["name"]].append(r["value"])
for (test, name), values in sorted(ranges.items()):
    print(f"{test.split('::')[-1][:60]:60s} {name[:28]:28s} n={len(values):3d}  {min(values):.4f} .. {max(values):.4f}")
PY
