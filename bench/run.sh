#!/usr/bin/env bash
# Benchmarks flink-hpa-bridge on one machine, loopback only, bounded in time.
#
#   bash bench/run.sh            # ~4 minutes on 2 cores after the release build
#   DURATION=20s bash bench/run.sh
#
# Needs (installed when missing): prometheus and nginx-light (Debian), oha (crates.io).
# Prints one line per measurement; BENCHMARKS.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/flink-hpa-bridge-bench}
DURATION=${DURATION:-10s}
RATE=${RATE:-2000}
rm -rf "$OUT" && mkdir -p "$OUT/www"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v nginx >/dev/null || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
  cargo install oha --locked --root "$HOME/.local" >/dev/null 2>&1
  OHA="$HOME/.local/bin/oha"
fi

# BIN=path/to/flink-hpa-bridge measures another build (an older commit's) with this script.
if [ -z "${BIN:-}" ]; then
  cargo build --release --bins --examples 2>&1 | tail -n 1
fi
BIN=${BIN:-target/release/flink-hpa-bridge}
BENCH=${BENCH:-target/release/examples/bench}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "versions: $($BIN --version), $(prometheus --version 2>&1 | head -n1), $(nginx -v 2>&1), $($OHA --version)"

# A synthetic cluster: 100 jobs on 200 TaskManager pods, scraped every 5 s.
$BENCH env --jobs 100 --pods 200 --out "$OUT/prom-url" 2>"$OUT/env.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$OUT/prom-url" ] && break; sleep 0.3; done
PROM=$(cat "$OUT/prom-url")

cat >"$OUT/cached.yaml" <<EOF
server: {auth: {insecureSkipAuth: true}}
cache: {refreshInterval: 5s}
pods: {source: labels}
EOF
cat >"$OUT/uncached.yaml" <<EOF
server: {auth: {insecureSkipAuth: true}}
cache: {refreshInterval: "off"}
pods: {source: labels}
EOF
$BIN serve --config "$OUT/cached.yaml" --prometheus-url "$PROM" --bind-address 127.0.0.1 --secure-port 18443 2>"$OUT/cached.log" &
SERVER_PID=$!
PIDS+=($SERVER_PID)
$BIN serve --config "$OUT/uncached.yaml" --prometheus-url "$PROM" --bind-address 127.0.0.1 --secure-port 18444 2>"$OUT/uncached.log" &
PIDS+=($!)

# The floor: nginx serving the same bodies as static files over HTTPS with keep-alive, with
# one worker process (the floor the targets name) and with one per core (`auto`).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
nginx_conf() { # name workers port
  cat >"$OUT/nginx-$1.conf" <<EOF
worker_processes $2;
pid $OUT/nginx-$1.pid;
error_log $OUT/nginx-$1-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$3 ssl;
    ssl_certificate $OUT/cert.pem;
    ssl_certificate_key $OUT/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $OUT/www;
  }
}
EOF
  nginx -c "$OUT/nginx-$1.conf" -g 'daemon off;' &
  PIDS+=($!)
}
nginx_conf one 1 18445
nginx_conf auto auto 18449

S=https://127.0.0.1:18443
U=https://127.0.0.1:18444
N=https://127.0.0.1:18445
NA=https://127.0.0.1:18449
DISCOVERY=/apis/external.metrics.k8s.io/v1beta1
EXTERNAL="/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name%3Djob-7"
PODS="/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/*/flink_taskmanager_busy_time?labelSelector=app%3Dflink%2Ccomponent%3Dtaskmanager"
for _ in $(seq 100); do curl -skf "$S/readyz" >/dev/null && curl -skf "$U/readyz" >/dev/null && break; sleep 0.2; done

# Same bodies for the floor.
curl -sk "$S$DISCOVERY" >"$OUT/www/discovery.json"
curl -sk "$S$EXTERNAL" >"$OUT/www/external.json"
curl -sk "$S$PODS" >"$OUT/www/pods.json"
pods=$(jq '.items | length' "$OUT/www/pods.json")
echo "bodies: discovery $(wc -c <"$OUT/www/discovery.json") B, external $(wc -c <"$OUT/www/external.json") B, pods $(wc -c <"$OUT/www/pods.json") B ($pods pods)"
[ "$pods" = 200 ] || { echo "expected 200 pods in the pods/* answer"; exit 1; }

# oha: HTTP/1.1 keep-alive, one connection per worker.
load() { # name url [extra oha args]
  local name=$1 url=$2; shift 2
  "$OHA" -z "$DURATION" --insecure --no-tui --output-format json "$@" "$url" >"$OUT/$name.json" 2>/dev/null
  python3 - "$name" "$OUT/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(f"{name:<34} rps={s['requestsPerSec']:>9.0f}  p50={p['p50']*1000:7.3f} ms  p99={p['p99']*1000:7.3f} ms  codes={codes}")
PY
}

echo "--- closed loop, 32 connections (throughput)"
load discovery-ours "$S$DISCOVERY" -c 32
load discovery-nginx "$N/discovery.json" -c 32
load external-cached-ours "$S$EXTERNAL" -c 32
load external-nginx "$N/external.json" -c 32
load external-nginx-auto "$NA/external.json" -c 32
load external-uncached-ours "$U$EXTERNAL" -c 32
load pods-200-ours "$S$PODS" -c 32
load pods-200-nginx "$N/pods.json" -c 32
echo "--- open loop at $RATE requests/s, 16 connections (latency)"
load external-cached-ours-rate "$S$EXTERNAL" -c 16 -q "$RATE" --latency-correction
load external-nginx-rate "$N/external.json" -c 16 -q "$RATE" --latency-correction
load discovery-ours-rate "$S$DISCOVERY" -c 16 -q "$RATE" --latency-correction
load pods-200-ours-rate "$S$PODS" -c 16 -q "$RATE" --latency-correction

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rps = lambda n: json.load(open(f"{out}/{n}.json"))["summary"]["requestsPerSec"]
for ours, floor in [("discovery-ours", "discovery-nginx"), ("external-cached-ours", "external-nginx"), ("external-cached-ours", "external-nginx-auto"), ("pods-200-ours", "pods-200-nginx")]:
    print(f"throughput ours/{floor:<20} {ours:<22} {rps(ours)/rps(floor):.2f}x")
PY

# The servers above keep refreshing what they were asked for; stop them so that Prometheus'
# own request counter sees only the runs below.
kill "$SERVER_PID" "${PIDS[2]}" 2>/dev/null || true
sleep 1

echo "--- Prometheus queries per refresh interval (5 s), HPAs polling every 1 s for 30 s"
# A fresh server per run, so only that run's HPAs' queries are refreshed and counted.
for n in 1 10 100; do
  for jobs in same different; do
    $BIN serve --config "$OUT/cached.yaml" --prometheus-url "$PROM" --bind-address 127.0.0.1 --secure-port 18447 2>>"$OUT/hpas.log" &
    HPA_SERVER=$!
    for _ in $(seq 100); do curl -skf "https://127.0.0.1:18447/readyz" >/dev/null && break; sleep 0.1; done
    $BENCH hpas --server https://127.0.0.1:18447 --prometheus-url "$PROM" --hpas $n --jobs $jobs --seconds 30 --poll-ms 1000 --refresh-seconds 5
    kill $HPA_SERVER; wait $HPA_SERVER 2>/dev/null || true
  done
done

echo "--- start to /readyz = 200 (with config, Prometheus not yet asked)"
$BENCH ready --bin "$BIN" --config "$OUT/cached.yaml" --prometheus-url "$PROM" --runs 20 --port 18446

echo "--- resident memory after 10,000 distinct keys (a fresh server per signal)"
# flink_busy_time_max re-aggregates exactly, so its keys share one query per job;
# flink_kafka_lag_records (Flink source: records-in or records-out per group) does not, so each
# of its keys is a query, cache entry and answer of its own.
for metric in flink_busy_time_max flink_kafka_lag_records; do
  $BIN serve --config "$OUT/cached.yaml" --prometheus-url "$PROM" --bind-address 127.0.0.1 --secure-port 18448 2>>"$OUT/keys.log" &
  KEYS_PID=$!
  for _ in $(seq 100); do curl -skf "https://127.0.0.1:18448/readyz" >/dev/null && break; sleep 0.1; done
  $BENCH keys --server https://127.0.0.1:18448 --pid "$KEYS_PID" --count 10000 --metric $metric
  kill $KEYS_PID; wait $KEYS_PID 2>/dev/null || true
done
