#!/usr/bin/env bash
# Many images, series and threads: medinfer's predict_many / predict_series / predict against the model
# run bare, a hand-written C++ pipeline (benchmarks/compare/handwritten_pipeline.cpp) and a Python
# pipeline at batch 8, on the same files, with the same two models, in the same run; then the same with
# another process keeping one core busy. Prints every figure and the ratios; writes the grid plot.
#   bash scripts/bench_throughput.sh [ROUNDS] [PLOT.png] [SLICES] [SERIES_SLICES]
# Assumes scripts/test.sh has built everything. Data: build/throughput-data-SLICES-SERIES (written when
# missing; default 200 slices and a 300-slice series). The test run calls it with 1 round on 8 and 6.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
plot=${2:-build/throughput.png}
slices=${3:-200}
series=${4:-300}
data=build/throughput-data-$slices-$series
bin=build/benchmarks
[ -f "$data/resnet18/manifest.json" ] || /usr/bin/python3 benchmarks/compare/make_throughput_data.py --out "$data" \
  --slices "$slices" --series "$series" >/dev/null
figure() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
peer() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['images_per_s'])" "$1"; }
ratio() { /usr/bin/python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}x')" "$1" "$2"; }

for model in small resnet18; do
  images=200
  [ "$model" = resnet18 ] && images=64
  echo "== $model: $images images of 512x512 -> 224x224, $rounds rounds (medians)"
  out=$($bin/medinfer_throughput_benchmark --model="$data/$model" --files="$data/slices" --series="$data/series" \
        --images=$images --rounds="$rounds" --grid)
  echo "$out" | grep -v '^{'
  json=$(echo "$out" | tail -1)
  echo "$json" > "$data/result-$model.json"
  hand=$($bin/medinfer_handwritten_peer --model="$data/$model" --files="$data/slices" --rounds="$rounds")
  py=$(/usr/bin/python3 benchmarks/compare/python_batch_pipeline.py --model "$data/$model" --files "$data/slices" \
       --images "$images" --rounds "$rounds")
  echo "peer handwritten C++: $hand"
  echo "peer Python batch 8: $py"
  ours=$(figure "$json" many_w2_b4)
  echo "ratio predict_many (2 workers, batch 4: the defaults) / handwritten C++: $(ratio "$ours" "$(peer "$hand")")"
  echo "ratio predict_many (2 workers, batch 4: the defaults) / Python batch 8: $(ratio "$ours" "$(peer "$py")")"
  echo "ratio predict_many (2 workers, batch 4: the defaults) / model alone on both cores: $(ratio "$ours" "$(figure "$json" bare_bound_2x8)")"
  echo "ratio predict_many / predict one by one: $(ratio "$ours" "$(figure "$json" one_by_one)")"
  echo "ratio predict_many / 8 host threads calling predict: $(ratio "$ours" "$(figure "$json" host_threads_8)")"

  echo "== $model with another process keeping one core busy"
  for setting in "intra-op 1" "intra-op 2 (OMP_WAIT_POLICY=PASSIVE, as the CLI sets it)" "intra-op 2 (spinning OpenMP)"; do
    case "$setting" in
      "intra-op 1") env=(); io=1 ;;
      "intra-op 2 (OMP"*) env=(OMP_WAIT_POLICY=PASSIVE); io=2 ;;
      *) env=(OMP_WAIT_POLICY=ACTIVE); io=2 ;;
    esac
    busy=$(env "${env[@]}" $bin/medinfer_throughput_benchmark --model="$data/$model" --files="$data/slices" \
           --images=$images --rounds="$rounds" --intra-op=$io --busy --only=one_by_one,many_w1_b4,many_w2_b4 | tail -1)
    echo "busy, $setting: $busy"
  done
done
/usr/bin/python3 scripts/plot_throughput.py --out "$plot" "small CNN=$data/result-small.json" \
  "ResNet-18-class=$data/result-resnet18.json"
echo "plot: $plot"
