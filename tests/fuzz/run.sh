#!/usr/bin/env bash
# Builds the DICOM fuzzer with clang and runs it briefly from a seed corpus made by DCMTK's tools out
# of a small MR image (pydicom's MR_small.dcm from Debian's python3-pydicom, 64 x 64): every
# transfer syntax the tools write. Fails on any crash, sanitizer report, timeout or allocation above
# the limit.
#   run.sh SOURCE_DIR WORK_DIR [SECONDS]
set -euo pipefail
src=$1 work=$2 seconds=${3:-45}
mkdir -p "$work/seeds" "$work/corpus"
cmake -S "$src/tests/fuzz" -B "$work/build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
seed=$(/usr/bin/python3 -c "import pydicom.data; print(pydicom.data.get_testdata_file('MR_small.dcm'))")
cp "$seed" "$work/seeds/native.dcm"
dcmconv +ti "$seed" "$work/seeds/implicit.dcm"
dcmconv +tb "$seed" "$work/seeds/big.dcm"
dcmconv +td "$seed" "$work/seeds/deflated.dcm"
dcmcjpeg "$seed" "$work/seeds/jpeg.dcm"
dcmcjpls "$seed" "$work/seeds/jpegls.dcm"
dcmcrle "$seed" "$work/seeds/rle.dcm"
# Seeds stay small so mutations reach the header and the codestreams quickly.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0
"$work/build/dicom_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$work/seeds" 2>&1 | tail -25 || {
  echo "fuzzer found a problem (crash, sanitizer report, timeout or allocation above the limit)"; exit 1; }
