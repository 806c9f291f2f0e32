#!/usr/bin/env bash
# The Python package's overhead and its DICOM reader, against peers in the same run (docs/python.md):
# Pipeline.predict_many from Python against the same call from C++ (medinfer_throughput_benchmark's
# many_w2_b4) on the same files, dicom.read_instance against pydicom + numpy, and arrays going in
# borrowed (C-contiguous float32) against copied once (the same values as a strided view).
#   bash scripts/bench_python.sh [ROUNDS] [IMAGES]
# Assumes scripts/test.sh has built everything; data: build/python-bench-data-IMAGES (written when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
images=${2:-200}
data=build/python-bench-data-$images
[ -f "$data/small/manifest.json" ] || /usr/bin/python3 benchmarks/compare/make_throughput_data.py --out "$data" \
  --slices "$images" --series 6 >/dev/null
cpp=$(build/benchmarks/medinfer_throughput_benchmark --model="$data/small" --files="$data/slices" --images="$images" \
      --rounds="$rounds" --only=many_w2_b4 | tail -1)
py=$(PYTHONPATH=build/bindings/python /usr/bin/python3 benchmarks/compare/python_api.py --model "$data/small" \
     --files "$data/slices" --images "$images" --rounds "$rounds")
echo "C++ predict_many (2 workers, batch 4): $cpp"
echo "Python: $py"
/usr/bin/python3 - "$cpp" "$py" <<'PY'
import json, sys
cpp, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c, p = cpp["many_w2_b4"], py["python_predict_many_images_per_s"]
print(f"ratio Python predict_many / C++ predict_many: {p / c:.3f} (overhead {100 * (c - p) / c:+.1f} %)")
print(f"ratio read_instance / pydicom + numpy: {py['read_instance_per_s'] / py['pydicom_numpy_per_s']:.2f}x")
print(f"ratio predict(array) borrowed / copied once: {py['predict_array_borrowed_per_s'] / py['predict_array_copied_per_s']:.3f}x")
print(f"ratio preprocess.apply(array) borrowed / copied once: "
      f"{py['apply_array_borrowed_per_s'] / py['apply_array_copied_per_s']:.3f}x")
PY
