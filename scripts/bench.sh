#!/usr/bin/env bash
# Full benchmark run: medinfer (C++, Google Benchmark) and the Python peer on the same sample study,
# in the same run, then the ratios. Assumes scripts/test.sh has built everything.
#   bash scripts/bench.sh [SECONDS_PER_BENCHMARK]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
study=build/sample-study
[ -f "$study/truth.csv" ] || /usr/bin/python3 scripts/make_sample_study.py --out "$study" >/dev/null
out=$(build/benchmarks/medinfer_benchmark --study="$study" --model=models/demo --benchmark_min_time="$secs" --benchmark_color=false 2>/dev/null)
echo "$out"
peer=$(/usr/bin/python3 benchmarks/compare/python_pipeline.py --study "$study" --model models/demo --seconds "$secs")
echo "$peer"
ours=$(echo "$out" | sed -n 's/^end to end: \([0-9.e+]*\) images\/s.*/\1/p')
theirs=$(echo "$peer" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
/usr/bin/python3 -c "print(f'ratio medinfer / python peer (end to end, file -> calibrated result): {float($ours)/float($theirs):.2f}x')"
pre=$(echo "$out" | sed -n 's/^preprocess (demo spec): \([0-9.e+]*\) images\/s.*/\1/p')
batch=$(echo "$out" | sed -n 's/^preprocess batch of 8 on 2 threads (demo spec): \([0-9.e+]*\) images\/s.*/\1/p')
echo "$peer" | /usr/bin/python3 -c "
import json, sys
p = json.load(sys.stdin)
for k in ('numpy', 'opencv_python'):
    v = p.get(f'preprocess_{k}_images_per_s')
    if v: print(f'ratio medinfer / {k} (preprocessing, demo spec): {float($pre) / v:.2f}x one thread, '
                f'{float("${batch:-0}") / v:.2f}x batch of 8 on both cores')
"
# The same end-to-end benchmark with glibc's malloc tuned (large blocks kept in the heap): on this VM
# fresh large allocations page-fault, and whether they do depends on what ran earlier in the process
# (docs/benchmarks.md). Both settings are printed; the default one is what a host gets out of the box.
tuned=$(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 build/benchmarks/medinfer_benchmark \
  --study="$study" --model=models/demo --benchmark_min_time="$secs" --benchmark_color=false \
  --benchmark_filter='DicomRead|PreprocessDemoSpec|BareTorch|EngineRun|EndToEnd' 2>/dev/null |
  sed -n 's/^end to end: \([0-9.e+]*\) images\/s.*/\1/p')
/usr/bin/python3 -c "print(f'ratio medinfer / python peer (end to end, malloc tuned: MALLOC_MMAP_THRESHOLD_=32M, MALLOC_TRIM_THRESHOLD_=256M): {float($tuned)/float($theirs):.2f}x')"
