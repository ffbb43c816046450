#!/usr/bin/env bash
# bench/peer: braid against the peer baseline (bench/peer/server.mjs, Node.js
# with onnxruntime-node 1.21 on the same ONNX files, same thread budget) and
# against braid's own naive configuration (--no-batching --cache-bytes 0),
# all answering the same KServe v2 JSON requests from the same load
# generator (braid bench, closed loop, concurrency 1, 16 and 64, requests
# that opt out of braid's result cache) in one run.
#   bench/peer/run.sh [WINDOW_SECONDS]      (default 2; three windows per level)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
window="${1:-2}"

start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
start naive "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  --no-batching --cache-bytes 0
start peer node "$root/bench/peer/server.mjs" --models "$build/models" --port 0 --threads 2

echo "| model | server | concurrency | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
for model in clip-image clip-text; do
  for server in peer naive braid; do
    "$build/braid" bench --url "http://$(address "$server" http)" -m "$model" -c 1,16,64 --unique-inputs 4 \
      --warmup 1 --window "$window" --max-windows 3 --csv "$work/$model-$server.csv" >/dev/null
    awk -F, -v m="$model" -v s="$server" 'NR > 1 {
      printf "| %s | %s | %s | %.1f | %.1f | %.1f | %s |\n", m, s, $2, $6, $7 / 1000, $9 / 1000, $4 }' \
      "$work/$model-$server.csv"
  done
done

echo
for model in clip-image clip-text; do
  # The peer's saturation point: the concurrency where its throughput peaks.
  read -r sat peer_rps peer_p99 < <(awk -F, 'NR > 1 && $6 > best { best = $6; c = $2; p99 = $9 }
    END { print c, best, p99 }' "$work/$model-peer.csv")
  read -r braid_rps braid_p99 < <(awk -F, -v c="$sat" 'NR > 1 && $2 == c { print $6, $9 }' "$work/$model-braid.csv")
  read -r naive_rps < <(awk -F, -v c="$sat" 'NR > 1 && $2 == c { print $6 }' "$work/$model-naive.csv")
  ratios=$(for c in 1 16 64; do
    paste -d, <(awk -F, -v c=$c 'NR > 1 && $2 == c { print $6 }' "$work/$model-braid.csv") \
              <(awk -F, -v c=$c 'NR > 1 && $2 == c { print $6 }' "$work/$model-peer.csv") |
      awk -F, -v c=$c '{ printf "%s×%.2f ", c, ($2 > 0 ? $1 / $2 : 0) }'
  done)
  awk -v m="$model" -v sat="$sat" -v br="$braid_rps" -v pr="$peer_rps" -v bp="$braid_p99" -v pp="$peer_p99" \
      -v nr="$naive_rps" -v ratios="$ratios" 'BEGIN {
    printf "- %s: braid / peer throughput at concurrency 1, 16, 64: %s(as concurrency×ratio); at the peer'"'"'s saturation point (concurrency %s): **%.2f×** with p99 %.1f ms vs the peer'"'"'s %.1f ms (goal ≥ 2× at equal or lower p99); braid / its naive configuration there: %.2f×\n",
      m, ratios, sat, br / pr, bp / 1000, pp / 1000, (nr > 0 ? br / nr : 0) }'
done
