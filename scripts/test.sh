#!/usr/bin/env bash
# Every test: install, build everything, run CTest (C++ unit, end-to-end, ABI, install/consumer,
# benchmark smoke) and pytest (bindings, CLI, parity with Python torch). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test || exit 1
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEDINFER_BUILD_TESTS=ON -DMEDINFER_BUILD_PYTHON=ON \
  -DMEDINFER_BUILD_BENCHMARKS=ON -DMEDINFER_BUILD_EXAMPLES=ON >/dev/null || exit 1
cmake --build build -j"$(nproc)" -- --no-print-directory >build/build.log 2>&1 || { tail -50 build/build.log; exit 1; }
status=0
(cd build && ctest --output-on-failure -j"$(nproc)") || status=1
MEDINFER_BUILD_DIR="$PWD/build" PYTHONPATH="$PWD/build/bindings/python" \
  /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/python
rc=$?
if [ $rc -ne 0 ]; then status=1; fi  # includes pytest's 5 (no tests collected): that is a failure here
exit $status
