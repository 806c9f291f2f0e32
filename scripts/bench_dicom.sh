#!/usr/bin/env bash
# DICOM decoding benchmark: medinfer (C++, Google Benchmark) and pydicom + numpy on the same files in
# the same run, then a table of ratios per transfer syntax and for a 300-slice series.
# Assumes scripts/test.sh has built everything.
#   bash scripts/bench_dicom.sh [SECONDS_PER_BENCHMARK] [SLICES]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1}
slices=${2:-300}
data=build/dicom-bench-$slices
[ -f "$data/syntaxes/htj2k_lossless.dcm" ] || /usr/bin/python3 benchmarks/compare/make_dicom_bench_data.py --out "$data" --slices "$slices"
build/benchmarks/medinfer_dicom_benchmark --data="$data" --benchmark_min_time="$secs" --benchmark_format=json \
  --benchmark_out="$data/medinfer.json" --benchmark_out_format=json >/dev/null
# GDCM (pydicom's handler for JPEG/JPEG-LS/J2K here) prints codec warnings on stderr: dropped.
/usr/bin/python3 benchmarks/compare/python_dicom.py --data "$data" --seconds "$secs" >"$data/peer.json" 2>/dev/null
# Peak resident memory of decoding each file once, over the binary's own baseline.
{
  echo "{\"baseline_kib\": $(build/benchmarks/medinfer_dicom_benchmark --peak-rss=),"
  first=1
  for f in "$data"/syntaxes/*.dcm; do
    [ $first -eq 1 ] || echo ","
    first=0
    echo "\"$(basename "$f" .dcm)\": $(build/benchmarks/medinfer_dicom_benchmark --peak-rss="$f")"
  done
  echo "}"
} >"$data/rss.json"
build/benchmarks/medinfer_htj2k_benchmark --codestream="$data/slice.j2c" --rows=512 --columns=512 --bits=12 \
  --benchmark_min_time="$secs" --benchmark_format=json >"$data/htj2k.json"
/usr/bin/python3 - "$data" <<'PY'
import json, sys
d = sys.argv[1]
rss = json.load(open(f"{d}/rss.json"))
ours = {b["name"].replace("/real_time", ""): b for b in json.load(open(f"{d}/medinfer.json"))["benchmarks"]}
peer = json.load(open(f"{d}/peer.json"))
ms = lambda b: b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0}[b["time_unit"]]
print(f"peer: {peer['peer']}")
print(f"{'syntax':24} {'medinfer ms':>11} {'MB/s':>7} {'pydicom ms':>10} {'speed-up':>8} {'raw read ms':>11} {'vs raw':>7} {'peak RSS MB':>11}  pydicom handler")
for name, p in peer["syntaxes"].items():
    dec, rawb = ours[f"decode/{name}"], ours[f"raw_read/{name}"]
    m, r = ms(dec), ms(rawb)
    mbs = dec["bytes_per_second"] / 1e6
    pyd = p.get("pydicom_ms")
    sp = f"{pyd / m:7.1f}x" if pyd else "     n/a"
    pys = f"{pyd:10.3f}" if pyd else f"{'fails':>10}"
    peak = (rss[name] - rss["baseline_kib"]) / 1024
    print(f"{name:24} {m:11.3f} {mbs:7.0f} {pys} {sp} {r:11.3f} {m / r:6.2f}x {peak:11.1f}  {p.get('handler') or p.get('pydicom_error', '')[:60]}")
hj = {b["name"].split("/")[1]: b for b in json.load(open(f"{d}/htj2k.json"))["benchmarks"]}
oj, ph = ms(hj["openjpeg"]), ms(hj["openjph"])
print(f"HTJ2K 512x512 12-bit lossless, decoder alone: OpenJPEG {oj:.3f} ms, OpenJPH {ph:.3f} ms "
      f"(OpenJPH {oj / ph:.2f}x faster; read_instance uses OpenJPEG: Debian's OpenJPH aborts on hostile input)")
f = ours["read_image_modality_float/explicit_le"]
print(f"read_image (float modality values), explicit_le: {ms(f):.3f} ms")
raw_series = ms(ours["series_raw_read"])
for t in (1, 2):
    s = ours[f"series_to_volume/threads:{t}"]
    print(f"series of {peer['series_slices']} slices -> Volume, {t} thread(s): {ms(s):.1f} ms "
          f"({peer['series_slices'] / ms(s) * 1000:.0f} slices/s); pydicom stack: {peer['series_pydicom_ms']:.1f} ms "
          f"({peer['series_pydicom_ms'] / ms(s):.1f}x); reading the bytes: {raw_series:.1f} ms ({ms(s) / raw_series:.2f}x)")
for t in (1, 2):
    v = ms(ours[f"preprocess_volume_3d/threads:{t}"])
    print(f"3D spec (window, 1.5 mm isotropic, 128^3, normalise), {t} thread(s): {v:.1f} ms; "
          f"scipy.ndimage {peer['volume_preprocess_scipy_ms']:.1f} ms ({peer['volume_preprocess_scipy_ms'] / v:.1f}x); "
          f"OpenCV-python {peer['volume_preprocess_opencv_ms']:.1f} ms ({peer['volume_preprocess_opencv_ms'] / v:.1f}x)")
PY
