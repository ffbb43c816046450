#!/usr/bin/env bash
# bench/serving/polling.sh: what polling before sleeping buys the network
# threads (HttpServerOptions::busy_poll), with and without it in each round.
#   - braid router: one replica, a router that never polls
#     (--busy-poll-us 0) and one with its default, identity straight to the
#     replica and through each router at concurrency 1 and 16 (braid bench);
#   - braid serve: --http-busy-poll-us 0 (its default) and 50 alternating,
#     each on a fresh server, identity over HTTP JSON at concurrency 1 and
#     64 (wrk with post_file.lua).
# Each round measures in a rotated order, so that neither side always goes
# first. Medians are what to quote; this machine moves between rounds.
#   bench/serving/polling.sh [ROUNDS]      (default 3)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
rounds="${1:-3}"
needs wrk python3

python3 -c 'import json, sys; json.dump({"inputs": [{"name": "input", "shape": [1, 16],
  "datatype": "FP32", "data": [float(i) for i in range(16)]}]}, open(sys.argv[1], "w"))' \
  "$work/identity.json"

bench() {  # URL CONCURRENCY → "p50_us rps"
  "$build/braid" bench --url "$1" -m identity -c "$2" --window 2 --max-windows 3 \
    --csv "$work/bench.csv" >/dev/null
  awk -F, 'NR == 2 { printf "%.1f %.0f\n", $7, $6 }' "$work/bench.csv"
}

start replica "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
replica="http://$(address replica http)"
start no-poll "$build/braid" router --host 127.0.0.1 --http-port 0 --busy-poll-us 0 \
  --replica "$replica"
start polling "$build/braid" router --host 127.0.0.1 --http-port 0 --replica "$replica"
declare -A url=([direct]="$replica" [no-poll]="http://$(address no-poll http)"
  [polling]="http://$(address polling http)")

echo "### braid router: identity p50 (µs) and req/s, straight and through each router"
echo
echo "| round | concurrency | direct | no polling | polling (default) | added p50: no polling / polling |"
echo "|---|---:|---:|---:|---:|---:|"
order=(direct no-poll polling)
for round in $(seq "$rounds"); do
  for c in 1 16; do
    declare -A p50=() rps=()
    for name in "${order[@]}"; do read -r "p50[$name]" "rps[$name]" <<<"$(bench "${url[$name]}" "$c")"; done
    added=$(awk -v d="${p50[direct]}" -v a="${p50[no-poll]}" -v b="${p50[polling]}" \
      'BEGIN { printf "%+.1f / %+.1f", a - d, b - d }')
    echo "| $round | $c | ${p50[direct]} µs, ${rps[direct]}/s | ${p50[no-poll]} µs, ${rps[no-poll]}/s |" \
      "${p50[polling]} µs, ${rps[polling]}/s | $added |"
  done
  order=("${order[@]:1}" "${order[0]}")
done

echo
echo "### braid serve: identity over HTTP JSON, --http-busy-poll-us 0 (default) vs 50"
echo
echo "| round | flags | p50 at 1, µs | req/s at 64 |"
echo "|---|---|---:|---:|"
sides=("--http-busy-poll-us 0" "--http-busy-poll-us 50")
for round in $(seq "$rounds"); do
  for flags in "${sides[@]}"; do
    # shellcheck disable=SC2086
    start "serve-$round-${#flags}" "$build/braid" serve --host 127.0.0.1 --http-port 0 \
      --grpc-port 0 --metrics-port 0 $flags
    infer="http://$(address "serve-$round-${#flags}" http)/v2/models/identity/infer"
    read -r p50_1 _ _ <<<"$(wrk_measure "$infer" 1 5 "$work/identity.json")"
    read -r _ rps_64 _ <<<"$(wrk_measure "$infer" 64 5 "$work/identity.json")"
    echo "| $round | $flags | $p50_1 | $rps_64 |"
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
  done
  sides=("${sides[1]}" "${sides[0]}")
done
