#!/usr/bin/env bash
# Builds a fuzzer with clang and runs it briefly from its seed corpus. Fails on any crash, sanitizer
# report, timeout or allocation above the limit.
#   run.sh SOURCE_DIR WORK_DIR [SECONDS] [TARGET]
# TARGET: dicom (default; seeds made by DCMTK's tools out of a small MR image, pydicom's MR_small.dcm
# from Debian's python3-pydicom, 64 x 64: every transfer syntax the tools write), json (the demo
# package's calibration, risk and preprocessing sections), package (the demo manifest, unsigned and
# with a signature file), audit (a chained log with two runs, a rotation and its witness).
set -euo pipefail
src=$1 work=$2 seconds=${3:-45} target=${4:-dicom}
work="$work/$target"
mkdir -p "$work/seeds" "$work/corpus"
cmake -S "$src/tests/fuzz" -B "$work/../build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/../build" -j"$(nproc)" --target "${target}_fuzzer" >/dev/null
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0
run_fuzzer() {
  "$work/../build/${target}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len="$1" -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$work/seeds" 2>&1 | tail -25 || {
    echo "fuzzer found a problem (crash, sanitizer report, timeout or allocation above the limit)"; exit 1; }
}
manifest="$src/models/demo/manifest.json"
case "$target" in
  json)
    /usr/bin/python3 - "$manifest" "$work/seeds" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for k in ("calibration", "risk", "preprocessing"):
    open(f"{sys.argv[2]}/{k}.json", "w").write(json.dumps(m[k]))
open(f"{sys.argv[2]}/multi.json", "w").write(json.dumps([m["calibration"]] * 3))
PY
    run_fuzzer 16384; exit 0 ;;
  package)
    /usr/bin/python3 - "$manifest" "$work/seeds" <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
m["files"] = {"model.pt": hashlib.sha256(b"not really a model").hexdigest()}  # the harness's model file
text = json.dumps(m, indent=2)
open(f"{sys.argv[2]}/unsigned.json", "wb").write(text.encode())
sig = json.dumps({"algorithm": "Ed25519", "key_id": "0" * 64, "signature": "A" * 88})
open(f"{sys.argv[2]}/signed.json", "wb").write((text + "\n--sig--\n" + sig).encode())
m["series"] = {"aggregation": "top_k_mean", "k": 3, "evidence_slices": 2, "calibrate": "aggregate",
               "calibration": {"method": "platt", "a": 1.0, "b": 0.0}}
m["series_selection"] = {"any_of": [{"modality": ["CT"], "orientation": ["axial"], "slices": [2, 900],
                                     "slice_thickness_mm": [0.5, 5]}, {"body_part": ["CHEST"]}]}
open(f"{sys.argv[2]}/series.json", "wb").write(json.dumps(m, indent=2).encode())
m["labels"] = [{"name": m["labels"][0], "code_value": "52988006", "coding_scheme": "SCT", "code_meaning": "Lesion"}]
open(f"{sys.argv[2]}/coded-labels.json", "wb").write(json.dumps(m, indent=2).encode())
PY
    run_fuzzer 65536; exit 0 ;;
  audit)
    cmake --build "$work/../build" -j"$(nproc)" --target audit_seed >/dev/null
    rm -f "$work/chain.jsonl" "$work/witness.jsonl"
    "$work/../build/audit_seed" "$work"
    cp "$work/chain.jsonl" "$work/seeds/chain.jsonl"
    head -n 1 "$work/chain.jsonl" > "$work/seeds/record.jsonl"
    cp "$work/witness.jsonl" "$work/seeds/witness.jsonl"
    cp "$src"/tests/fuzz/regressions/audit_*.jsonl "$work/seeds/" 2>/dev/null || true  # inputs that once failed
    run_fuzzer 65536; exit 0 ;;
  dicom) ;;
  *) echo "unknown fuzz target '$target'" >&2; exit 2 ;;
esac
seed=$(/usr/bin/python3 -c "import pydicom.data; print(pydicom.data.get_testdata_file('MR_small.dcm'))")
cp "$seed" "$work/seeds/native.dcm"
dcmconv +ti "$seed" "$work/seeds/implicit.dcm"
dcmconv +tb "$seed" "$work/seeds/big.dcm"
dcmconv +td "$seed" "$work/seeds/deflated.dcm"
dcmcjpeg "$seed" "$work/seeds/jpeg.dcm"
dcmcjpls "$seed" "$work/seeds/jpegls.dcm"
dcmcrle "$seed" "$work/seeds/rle.dcm"
# JPEG 2000 (OpenJPEG's encoder) and HTJ2K (OpenJPH's) codestreams in small files, when the tools are here.
if command -v opj_compress >/dev/null && command -v ojph_compress >/dev/null; then
  PYTHONPATH="$src/tests/python" /usr/bin/python3 - "$work/seeds" <<'PY' || true
import sys, dicom_factory as fac
out = sys.argv[1]
src = fac.pattern(16, 16, 12)
for codec in ("j2k", "htj2k"):
    fac.write_encapsulated(f"{out}/{codec}.dcm", 16, 16, 16, 12, fac.SYNTAX[codec], [fac.codestream(codec, src, 12)])
PY
fi
# Inputs that once crashed a decoder (tests/fuzz/regressions/) start every run.
cp "$src"/tests/fuzz/regressions/*.dcm "$work/seeds/" 2>/dev/null || true
# Seeds stay small so mutations reach the header and the codestreams quickly.
run_fuzzer 65536
