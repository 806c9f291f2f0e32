#!/usr/bin/env bash
# medinfer-serve under load (docs/serve.md): wrk at concurrency 1, 8 and 32 against the demo model,
# direct and through nginx, with the library's own streaming throughput (predict_many) on the same
# file in the same run. Assumes scripts/test.sh has built everything.
#   bash scripts/bench_serve.sh [SECONDS_PER_RUN] [CONCURRENCY...]
#   MEDINFER_BENCH_VIA=nginx bash scripts/bench_serve.sh 300 8    (5 minutes sustained through nginx)
# Each run also reports the service's resident memory (first and last sample, maximum) to show it stays flat.
# Last, the service against the library on one core each (the client on the other): their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 8 32)
build=${MEDINFER_BUILD_DIR:-build}
study=$build/sample-study
[ -f "$study/truth.csv" ] || /usr/bin/python3 scripts/make_sample_study.py --out "$study" >/dev/null
file=$study/000_obvious_positive.dcm
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$build/examples/http_service/medinfer-serve" --model models/demo --listen 127.0.0.1:0 ${MEDINFER_SERVE_ARGS:-} --queue-depth 1024 \
  > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 100); do grep -q '^ready' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
direct=$(sed -n 's/^ready //p' "$work/serve.out")
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_buffer_size 16m;
  client_max_body_size 64m;
  proxy_buffering off;
  upstream medinfer { server $direct; keepalive 64; keepalive_timeout 4s; }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://medinfer; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' &
sleep 0.5
export MEDINFER_BENCH_FILE=$file
vias=${MEDINFER_BENCH_VIA:-direct nginx}
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$serve_pid/status"; }
for c in "${levels[@]}"; do
  for via in $vias; do
    target=$direct
    [ "$via" = nginx ] && target=127.0.0.1:$port
    t=$(( c < 2 ? 1 : 2 ))
    : > "$work/rss"
    ( while sleep 2; do rss >> "$work/rss"; echo >> "$work/rss"; done ) &
    sampler=$!
    line=$(wrk -t"$t" -c"$c" -d"${secs}s" -s benchmarks/serve/post_dicom.lua "http://$target" | sed -n 's/^RESULT //p')
    kill "$sampler" 2>/dev/null || true
    mem=$(grep -v '^$' "$work/rss" | awk 'NR == 1 {f = $1} {l = $1; if ($1 > m) m = $1} END {printf "\"rss_mib_first\": %s, \"rss_mib_last\": %s, \"rss_mib_max\": %s", f, l, m}')
    echo "{\"via\": \"$via\", \"concurrency\": $c, $(echo "$line" | sed -E 's/([a-z0-9_]+)=([0-9.]+)/"\1": \2,/g; s/,$//'), $mem}"
  done
done
lib=$(PYTHONPATH=$build/bindings/python /usr/bin/python3 - "$file" "$secs" <<'PY'
import sys, time
import medinfer
p = medinfer.Pipeline.open("models/demo")
paths = [sys.argv[1]] * 256
p.predict_many(paths)  # warm
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < float(sys.argv[2]):
    p.predict_many(paths, batch_size=4, workers=2)
    n += len(paths)
print(f"{n / (time.perf_counter() - t0):.1f}")
PY
)
echo "{\"library_predict_many_rps\": $lib}"

# The same comparison on equal CPU: the library's predict_many with one worker on core 0, against the
# service (one worker, plus MEDINFER_SERVE_ARGS, e.g. the batcher) on core 0 with wrk alone on core 1,
# so the client never takes the service's core. The ratio is the service's cost per request over HTTP.
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
  taskset -c 0 "$build/examples/http_service/medinfer-serve" --model models/demo --listen 127.0.0.1:0 --workers 1 \
    ${MEDINFER_SERVE_ARGS:-} --queue-depth 1024 > "$work/pinned.out" 2> "$work/pinned.err" &
  pinned_pid=$!
  for _ in $(seq 100); do grep -q '^ready' "$work/pinned.out" 2>/dev/null && break; sleep 0.1; done
  pinned=$(sed -n 's/^ready //p' "$work/pinned.out")
  svc=$(taskset -c 1 wrk -t1 -c"${MEDINFER_BENCH_PINNED_CONCURRENCY:-4}" -d"${secs}s" -s benchmarks/serve/post_dicom.lua \
    "http://$pinned" | sed -n 's/^RESULT .*rps=\([0-9.]*\).*/\1/p')
  kill "$pinned_pid" 2>/dev/null || true
  lib1=$(PYTHONPATH=$build/bindings/python taskset -c 0 /usr/bin/python3 - "$file" "$secs" <<'PY'
import sys, time
import medinfer
p = medinfer.Pipeline.open("models/demo")
paths = [sys.argv[1]] * 256
p.predict_many(paths, workers=1)  # warm
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < float(sys.argv[2]):
    p.predict_many(paths, batch_size=4, workers=1)
    n += len(paths)
print(f"{n / (time.perf_counter() - t0):.1f}")
PY
)
  echo "{\"one_core\": {\"service_rps\": $svc, \"library_predict_many_rps\": $lib1, \"ratio\": $(awk -v a="$svc" -v b="$lib1" 'BEGIN {printf "%.2f", a / b}')}}"
fi
