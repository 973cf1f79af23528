#!/usr/bin/env bash
# Scale benchmark: what one refresh of every built-in signal costs at 10, 100 and 1,000 Flink
# jobs (8 vertices each, parallelism 1..64, 2 TaskManager pods per job), scraped by a real
# Prometheus on loopback with temporary storage.
#
#   bash bench/scale.sh                        # 10, 100, 1000 jobs; ~15 minutes on 2 cores
#   JOBS="10 100" bash bench/scale.sh
#   MAX_SERIES=20000 JOBS=1000 bash bench/scale.sh   # a lower series cap: grouped queries shard
#
# Per size it prints: each grouped query's series count and time in Prometheus (its own
# evaluation time, and the whole HTTP answer), the server's CPU time and peak memory per
# refresh of all signals, and one HPA's answer latency (first request, then from memory).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/flink-hpa-bridge-scale}
JOBS=${JOBS:-10 100 1000}
SCRAPE=${SCRAPE:-15}
REFRESH=${REFRESH:-15}
REFRESHES=${REFRESHES:-4}
MAX_SERIES=${MAX_SERIES:-}
PORT=18460
rm -rf "$OUT" && mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --bins --examples 2>&1 | tail -n 1
fi
BIN=${BIN:-target/release/flink-hpa-bridge}
BENCH=${BENCH:-target/release/examples/bench}
TICK=$(getconf CLK_TCK)

cpu_s() { awk -v t="$TICK" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/{printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
rss_mib() { awk '/VmRSS/{printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
metric_sum() { # server-metrics-file name: the sum of every series of the metric
  awk -v n="$2" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.6f", s}' "$1"
}

# One HPA per signal, for job-7 in its namespace (team-7).
NS=team-7
EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS
REQUESTS=(
  "flink_busy_time_max|$EXT/flink_busy_time_max?labelSelector=job_name%3Djob-7"
  "flink_kafka_lag_records|$EXT/flink_kafka_lag_records?labelSelector=job_name%3Djob-7"
  "flink_kafka_lag_seconds|$EXT/flink_kafka_lag_seconds?labelSelector=job_name%3Djob-7"
  "flink_required_taskmanagers|$EXT/flink_required_taskmanagers?labelSelector=job_name%3Djob-7"
  "flink_taskmanager_busy_time|/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/pods/*/flink_taskmanager_busy_time?labelSelector=app%3Dflink%2Ccomponent%3Dtaskmanager"
)
# The shared job-state query (restart detection), as the server builds it.
JOB_STATE='label_replace(min by (namespace, job_name) (flink_jobmanager_job_runningTime), "bridge_part", "running", "", "") or label_replace(max by (namespace, job_name) (flink_jobmanager_job_numRestarts), "bridge_part", "restarts", "", "") or label_replace(max by (namespace, job_name) (count by (namespace, job_name, task_id) (flink_taskmanager_job_task_busyTimeMsPerSecond)), "bridge_part", "parallelism", "", "")'

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $($BIN --version); $(prometheus --version 2>&1 | head -n1)"
echo "scrape ${SCRAPE}s, cache refresh ${REFRESH}s, CPU over $REFRESHES refreshes${MAX_SERIES:+, series cap $MAX_SERIES}"

for jobs in $JOBS; do
  echo "=== $jobs jobs"
  rm -f "$OUT/prom-url"
  started=$(date +%s)
  $BENCH platform --jobs "$jobs" --scrape-seconds "$SCRAPE" --out "$OUT/prom-url" 2>"$OUT/platform-$jobs.log" &
  PLATFORM=$!
  PIDS+=($PLATFORM)
  for _ in $(seq 600); do [ -s "$OUT/prom-url" ] && break; sleep 0.5; done
  PROM=$(cat "$OUT/prom-url")
  tail -n 1 "$OUT/platform-$jobs.log"
  # Rates need two scrapes inside their window.
  sleep $((SCRAPE * 2 + 2))
  heads=$(curl -s "$PROM/api/v1/status/tsdb" | jq -r '.data.headStats.numSeries')
  echo "prometheus: $heads head series, ready after $(( $(date +%s) - started )) s"

  cat >"$OUT/server-$jobs.yaml" <<EOF
server: {auth: {insecureSkipAuth: true}}
cache: {refreshInterval: ${REFRESH}s}
pods: {source: labels}
prometheus: {timeout: 30s${MAX_SERIES:+, maxSeries: $MAX_SERIES}}
EOF

  echo "--- grouped queries in Prometheus (series; Prometheus' evaluation; whole answer)"
  queries=()
  for r in "${REQUESTS[@]}"; do
    name=${r%%|*}
    case $name in
      flink_taskmanager_busy_time) args=(-l app=flink,component=taskmanager) ;;
      *) args=(-l job_name=job-7) ;;
    esac
    q=$($BIN query "$name" --config "$OUT/server-$jobs.yaml" --prometheus-url "$PROM" -n "$NS" "${args[@]}" 2>/dev/null \
      | awk '/^PromQL sent to/{getline; sub(/^  /, ""); print; exit}' || true)
    queries+=("$name|$q")
  done
  queries+=("flink_job_state|$JOB_STATE")
  for entry in "${queries[@]}"; do
    name=${entry%%|*}
    q=${entry#*|}
    curl -s -o "$OUT/answer.json" -w '%{time_total}' "$PROM/api/v1/query" \
      --data-urlencode "query=$q" --data-urlencode stats=all >"$OUT/time.txt" || true
    jq -r --arg name "$name" --arg t "$(cat "$OUT/time.txt")" \
      'if .status == "success" then
         "\($name): \(.data.result | length) series, eval \((.data.stats.timings.evalTotalTime * 1000 * 10 | round) / 10) ms, answer \(($t | tonumber) * 1000 | round) ms, \(.data.stats.samples.totalQueryableSamples // "?") samples read"
       else "\($name): \(.errorType): \(.error)" end' "$OUT/answer.json"
  done

  $BIN serve --config "$OUT/server-$jobs.yaml" --prometheus-url "$PROM" --bind-address 127.0.0.1 --secure-port $PORT 2>"$OUT/server-$jobs.log" &
  SERVER=$!
  PIDS+=($SERVER)
  for _ in $(seq 100); do curl -skf "https://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  rss0=$(rss_mib $SERVER)

  echo "--- one HPA per signal: first answer (queries Prometheus), then an answer from memory"
  for r in "${REQUESTS[@]}"; do
    name=${r%%|*}
    path=${r#*|}
    # One connection: the second answer's time has no TLS handshake in it.
    times=$(curl -sk -o "$OUT/body.json" -o /dev/null -w '%{http_code} %{time_total} %{time_appconnect}\n' \
      "https://127.0.0.1:$PORT$path" "https://127.0.0.1:$PORT$path")
    read -r c1 t1 h1 c2 t2 _ <<<"$(echo $times)"
    items=$(jq -r 'if .items then "\(.items | length) items" else .message end' "$OUT/body.json" 2>/dev/null | head -c 200)
    echo "$name: first $(awk -v t="$t1" -v h="$h1" 'BEGIN{printf "%.1f", (t-h)*1000}') ms after the handshake (HTTP $c1), then $(awk -v t="$t2" 'BEGIN{printf "%.2f", t*1000}') ms (HTTP $c2); $items"
  done

  # Background refreshes only from here: the entries above were requested, so they refresh
  # every interval whether or not anyone asks.
  curl -sk "https://127.0.0.1:$PORT/metrics" >"$OUT/m0.txt"
  cpu0=$(cpu_s $SERVER)
  sleep $((REFRESH * REFRESHES + 2))
  cpu1=$(cpu_s $SERVER)
  curl -sk "https://127.0.0.1:$PORT/metrics" >"$OUT/m1.txt"
  q0=$(metric_sum "$OUT/m0.txt" flink_hpa_bridge_prometheus_queries_total)
  q1=$(metric_sum "$OUT/m1.txt" flink_hpa_bridge_prometheus_queries_total)
  d0=$(metric_sum "$OUT/m0.txt" flink_hpa_bridge_prometheus_query_duration_seconds_sum)
  d1=$(metric_sum "$OUT/m1.txt" flink_hpa_bridge_prometheus_query_duration_seconds_sum)
  entries=$(awk '$1 == "flink_hpa_bridge_cache_entries" {print $2}' "$OUT/m1.txt")
  python3 - "$cpu0" "$cpu1" "$q0" "$q1" "$d0" "$d1" "$entries" "$(hwm_mib $SERVER)" "$rss0" "$(rss_mib $SERVER)" <<'PY'
import sys
cpu0, cpu1, q0, q1, d0, d1, entries, hwm, rss0, rss1 = map(float, sys.argv[1:])
queries = q1 - q0
refreshes = queries / entries if entries else 0
print(f"--- background refresh: {queries:.0f} queries over {entries:.0f} cache entries = {refreshes:.1f} refreshes")
if refreshes:
    print(f"server CPU per refresh of all signals: {(cpu1 - cpu0) / refreshes * 1000:.0f} ms "
          f"(total {cpu1 - cpu0:.2f} s); query wall time per refresh {(d1 - d0) / refreshes * 1000:.0f} ms")
print(f"server memory: {rss0:.1f} MiB fresh, {rss1:.1f} MiB now, peak {hwm:.1f} MiB")
PY
  echo "server log lines about sharding: $(grep -ci shard "$OUT/server-$jobs.log" || true)"
  kill $SERVER $PLATFORM 2>/dev/null || true
  wait $SERVER $PLATFORM 2>/dev/null || true
done
