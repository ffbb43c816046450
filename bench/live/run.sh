#!/usr/bin/env bash
# bench/live: live transcription (the WebSocket at
# /v1/audio/transcriptions/stream) from a real client in real time.
#   bench/live/run.sh [LEVELS]      (default 1,2,4,6,8,16,32,64 simultaneous streams)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
levels="${1:-1,2,4,6,8,16,32,64}"
needs node
streams=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)
start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  --live-streams "$streams"
port=$(address braid http | cut -d: -f2)
metrics=$(address braid metrics | cut -d: -f2)
node "$root/bench/live/bench_live.mjs" --port "$port" --metrics "$metrics" --pid "${pids[0]}" --fixtures "$build/fixtures" \
  --levels "$levels"
