#!/usr/bin/env bash
# Soak: mixed valid and invalid requests against the server while Prometheus is killed and
# restarted every 15 s. Loopback only, bounded: SECONDS_TOTAL (default 120) and 8 workers.
# Reports answers by kind and status, the server's memory over time, and panics (must be 0).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }
cargo build --release --bins --examples 2>&1 | tail -n 1
target/release/examples/bench soak --bin target/release/flink-hpa-bridge \
  --seconds "${SECONDS_TOTAL:-120}" --workers "${WORKERS:-8}" --restart-every "${RESTART_EVERY:-15}"
