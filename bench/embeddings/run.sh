#!/usr/bin/env bash
# bench/embeddings: braid's text embedder (text-embed) beside the CLIP
# stand-in, all figures from one run:
#   - bench_embeddings: retrieval on data held aside from training (WordNet's
#     held-out synsets, the hand-written everyday pairs, the same documents
#     rendered as images and read by OCR) and encoding cost in process;
#   - over HTTP, one client, POST /v1/embeddings with a new text every
#     request (no cache hits): p50 and throughput per model (goal for
#     text-embed: p50 ≤ 1 ms on an idle server).
#   bench/embeddings/run.sh [SECONDS]      (default 5 per HTTP measurement)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
seconds="${1:-5}"

"$build/bench/embeddings/bench_embeddings"

start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
echo
echo "### POST /v1/embeddings over HTTP, one client, a new text each request"
echo
echo "| model | req/s | p50 ms | p99 ms | errors |"
echo "|---|---:|---:|---:|---:|"
for model in text-embed clip-text; do
  "$build/braid" bench --url "http://$(address braid http)" --endpoint openai-embeddings -m "$model" \
    --text "an everyday question about the weather" --unique-inputs 1000000 -c 1 \
    --warmup 1 --window "$seconds" --max-windows 3 --csv "$work/$model.csv" >/dev/null
  awk -F, -v m="$model" 'NR > 1 {
    printf "| %s | %.1f | %.3f | %.3f | %s |\n", m, $6, $7 / 1000, $9 / 1000, $4 }' "$work/$model.csv"
done
