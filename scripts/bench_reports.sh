#!/usr/bin/env bash
# Report writing (docs/reports.md): medinfer's DICOM SR + FHIR against pydicom + a hand-written TID 1500
# tree, in the same run, on the same results. Assumes scripts/test.sh has built everything.
#   bash scripts/bench_reports.sh [ROUNDS] [SLICES]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
slices=${2:-300}
build=${MEDINFER_BUILD_DIR:-build}
study=$build/sample-study
[ -f "$study/truth.csv" ] || /usr/bin/python3 scripts/make_sample_study.py --out "$study" >/dev/null
series=$build/report-bench-series-$slices
if [ ! -d "$series" ]; then
  mkdir -p "$series"
  /usr/bin/python3 - "$series" "$slices" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "scripts")
import make_sample_study
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(16)
study = "1.2.826.0.1.3680043.8.498.1616"
for i in range(n):
    make_sample_study.write_ct(f"{out}/{i:04d}.dcm", rng.normal(0, 20, (64, 64)).astype(np.float32), i, study,
                               study + ".1", 16)
PY
fi
PYTHONPATH=$build/bindings/python /usr/bin/python3 benchmarks/compare/python_reports.py --model models/demo \
  --image "$study/000_obvious_positive.dcm" --series "$series" --rounds "$rounds"
