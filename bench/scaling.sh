#!/usr/bin/env bash
# Scaling quality of every shipped HPA example on the seed workload, offline: the job model
# under each HPA (`flink-hpa-bridge simulate`), the signals evaluated by the server's own
# code over an in-memory Prometheus. Prints a Markdown table; BENCHMARKS.md records a run.
#
#   bash bench/scaling.sh                 # 6 h of the seed sine (1 h period, 0-6,000 rec/s)
#   DURATION=2h bash bench/scaling.sh
#   BIN=target/debug/flink-hpa-bridge bash bench/scaling.sh   # reuse a built binary
#
# Deterministic: the same inputs give the same figures on any machine. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6h}
PERIOD=${PERIOD:-1h}
PEAK=${PEAK:-6000}
OUT=${OUT:-/tmp/flink-hpa-bridge-scaling}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/flink-hpa-bridge
fi
command -v jq >/dev/null || { echo "needs jq (apt-get install -y jq)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"

# flinkRequiredTaskManagers with a trend forecast: the same signal, sized 2 min ahead.
cat >"$OUT/forecast.yaml" <<'YAML'
signals:
  - name: flink_required_taskmanagers
    type: flinkRequiredTaskManagers
    forecast: {lead: 2m, method: trend}
YAML

# The same signal tuned for a load that changes over tens of minutes: less headroom, a shorter
# window (and with it a shorter hold after each restart).
cat >"$OUT/tuned.yaml" <<'YAML'
signals:
  - name: flink_required_taskmanagers
    type: flinkRequiredTaskManagers
    targetUtilization: 0.85
    window: 2m
YAML

run() { # name hpa [config]
  local name=$1 hpa=$2 cfg=${3:-}
  local args=(simulate --hpa "$hpa" --workload sine --duration "$DURATION" --period "$PERIOD"
    --peak "$PEAK" --out "$OUT/$name")
  [ -n "$cfg" ] && args+=(--config "$cfg")
  "$BIN" "${args[@]}" >"$OUT/$name.txt" 2>&1 || { echo "| $name | failed: $(tail -1 "$OUT/$name.txt") |"; return; }
  jq -r --arg n "$name" '"| \($n) | \(.taskmanager_seconds|floor) | \(.taskmanager_seconds_over_oracle*100|round/100) | \(.max_taskmanagers) | \(.max_lag_seconds|round) | \(.seconds_lag_above_limit|round) | \(.rescales) | \(.rescales_per_half_cycle*10|round/10) | \(.syncs_with_metric_errors)/\(.syncs) |"' \
    "$OUT/$name/summary.json"
}

echo "| HPA example | TaskManager-s | × oracle | max TMs | max lag, s | s above 5 min lag | rescales | per half-cycle | syncs with a metric error |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in hpa-examples/*.yaml; do
  run "$(basename "$f" .yaml)" "$f"
done
run "required-taskmanagers + trend forecast" hpa-examples/required-taskmanagers.yaml "$OUT/forecast.yaml"
run "required-taskmanagers + targetUtilization 0.85, window 2m" hpa-examples/required-taskmanagers.yaml "$OUT/tuned.yaml"
