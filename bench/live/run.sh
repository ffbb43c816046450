#!/usr/bin/env bash
# bench/live: live transcription (the WebSocket at
# /v1/audio/transcriptions/stream, and gRPC ModelStreamInfer sequences)
# from a real client in real time, then live video frames (/v1/video/stream).
#   bench/live/run.sh [LEVELS] [TRANSPORTS]
#   (defaults 1,2,4,6,8,16,32,64 simultaneous streams; ws,grpc)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
levels="${1:-1,2,4,6,8,16,32,64}"
transports="${2:-ws,grpc}"
needs node
streams=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)
start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  --live-streams "$streams"
port=$(address braid http | cut -d: -f2)
metrics=$(address braid metrics | cut -d: -f2)
grpc=$(address braid grpc | cut -d: -f2)
for transport in ${transports//,/ }; do
  node "$root/bench/live/bench_live.mjs" --port "$port" --metrics "$metrics" --pid "${pids[0]}" \
    --fixtures "$build/fixtures" --levels "$levels" --transport "$transport" --grpc "$grpc" \
    --proto "$root/proto/grpc_service.proto"
done
node "$root/bench/live/bench_video.mjs" --port "$port" --fixtures "$build/fixtures"
