#!/usr/bin/env bash
# bench/near_duplicates: perceptual cache keys (issue 27), all figures from
# one run on one generated trace (bench_near_duplicates: 40 % distinct
# images, 60 % near duplicates of earlier ones):
#   - in process: hit ratios of exact and perceptual keys, false hits, and a
#     perceptual key's cost beside the OCR miss it saves;
#   - over HTTP, one client, the trace sent in order to an OCR workflow whose
#     image input is keyed by its bytes (read-exact) and to the same
#     workflow keyed perceptually (read-perceptual), each on a fresh server:
#     requests per second, image keys by how they were given, and every
#     distinct image's answer compared with the exact workflow's.
#   bench/near_duplicates/run.sh [DISTINCT NEAR]      (default 100 150)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
needs curl jq
distinct="${1:-100}"
near="${2:-150}"

"$build/bench/near_duplicates/bench_near_duplicates" --distinct "$distinct" --near "$near" \
  --write "$work/trace"

mkdir -p "$work/workflows"
for key in exact perceptual; do
  cat >"$work/workflows/read-$key.yaml" <<YAML
description: What OCR reads in an image, the image keyed by its ${key} key.
inputs:
  image: {type: image, cache_key: $key}
nodes:
  - {id: ocr, kind: model, model: ocr, from: {image: inputs.image}}
outputs: {text: ocr.text}
YAML
done

# send KEY: the trace to read-KEY on a fresh server; answers in $work/KEY/.
send() {
  local key=$1
  start "braid-$key" "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 \
    --metrics-port 0 --workflows "$work/workflows" --data-dir "$work/data-$key"
  local url="http://$(address "braid-$key" http)"
  mkdir -p "$work/$key"
  local began=$(date +%s.%N)
  while IFS=$'\t' read -r request _ _; do
    curl -s -f -H 'Content-Type: application/json' --data-binary "@$work/trace/$request.json" \
      "$url/v1/workflows/read-$key/run" | jq -r '.data.outputs.text' >"$work/$key/$request"
  done <"$work/trace/trace.tsv"
  local ended=$(date +%s.%N)
  curl -s "http://$(address "braid-$key" metrics)/metrics" >"$work/$key.metrics"
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  awk -v b="$began" -v e="$ended" -v n="$(wc -l <"$work/trace/trace.tsv")" \
    'BEGIN { printf "%.2f", n / (e - b) }' >"$work/$key.rps"
}
send exact
send perceptual

echo
echo "### Over HTTP: the trace to an OCR workflow, one client, each on a fresh server"
echo
echo "| image key | req/s | keys given (exact / perceptual / new) |"
echo "|---|---:|---|"
for key in exact perceptual; do
  keys=$(awk '/^braid_cache_image_keys_total/ { split($1, a, "\""); v[a[2]] = $2 }
    END { printf "%d / %d / %d", v["exact"], v["perceptual"], v["new"] }' "$work/$key.metrics")
  echo "| $key | $(cat "$work/$key.rps") | $keys |"
done
wrong=0
distincts=0
while IFS=$'\t' read -r request _ kind; do
  [[ $kind == distinct ]] || continue
  distincts=$((distincts + 1))
  cmp -s "$work/exact/$request" "$work/perceptual/$request" || wrong=$((wrong + 1))
done <"$work/trace/trace.tsv"
echo
awk -v p="$(cat "$work/perceptual.rps")" -v x="$(cat "$work/exact.rps")" -v w="$wrong" -v d="$distincts" \
  'BEGIN { printf "- Throughput with perceptual keys: **%.2f×** the exact keys'"'"'.\n- Distinct images answered differently than by the exact workflow (false hits): **%d** of %d.\n", p / x, w, d }'
