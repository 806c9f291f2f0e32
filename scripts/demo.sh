#!/usr/bin/env bash
# The main job: install, build, write the sample study, and run the demo model on it.
# Prints one JSON result per image; appends one audit record per image to build/demo-audit.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEDINFER_BUILD_TESTS=OFF -DMEDINFER_BUILD_PYTHON=OFF \
  -DMEDINFER_BUILD_BENCHMARKS=OFF -DMEDINFER_BUILD_EXAMPLES=ON >/dev/null
cmake --build build --target medinfer_cli -j"$(nproc)" -- --no-print-directory | grep -E "error|warning|Built target" || true
test -x build/examples/cli/medinfer
if [ ! -f build/sample-study/truth.csv ]; then
  /usr/bin/python3 scripts/make_sample_study.py --out build/sample-study
fi
echo "== medinfer predict on build/sample-study (truth: build/sample-study/truth.csv)"
build/examples/cli/medinfer predict --model models/demo --audit-log build/demo-audit.jsonl \
  --sr build/demo-reports --fhir build/demo-reports build/sample-study/*.dcm
echo "== audit log: build/demo-audit.jsonl ($(wc -l < build/demo-audit.jsonl) records)"
echo "== reports: build/demo-reports ($(ls build/demo-reports | grep -c '\.sr\.dcm$') DICOM SR, $(ls build/demo-reports | grep -c '\.fhir\.json$') FHIR Bundles; docs/reports.md)"
