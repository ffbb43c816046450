#!/usr/bin/env bash
# bench/overload: clip-text past saturation with mixed priorities, on one
# machine, driven by braid bench.
#   1. saturation: the best closed-loop throughput over concurrency 4, 8, 16;
#   2. priority 1 alone at a tenth of it (open loop): its unloaded p99;
#   3. for 2× and 4× saturation: a priority-2 flood (100 ms timeouts)
#      beside the same priority-1 trickle, both open loop at once.
# Reports goodput / peak (goal ≥ 0.9), priority-1 p99 loaded / unloaded
# (goal ≤ 2), the p99 time to refuse a flood request (goal ≤ 1 ms), the
# requests started past their deadline (goal 0) and the server's RSS.
#   bench/overload/run.sh [WINDOW_SECONDS]      (default 2; three windows per level)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
window="${1:-2}"

start serve "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
url="http://$(address serve http)"
metrics="http://$(address serve metrics)/metrics"
bench() {  # NAME ARGS... → writes $work/NAME.csv
  "$build/braid" bench --url "$url" -m clip-text --unique-inputs 64 --warmup 1 --window "$window" \
    --max-windows 3 --csv "$work/$1.csv" "${@:2}" >/dev/null
}
field() { awk -F, -v c="$2" 'NR == 2 { print $c }' "$work/$1.csv"; }  # NAME COLUMN
rss_mb() { curl -s "$metrics" | awk '$1 == "braid_process_resident_memory_bytes" { printf "%.0f", $2 / 1048576 }'; }
stat() { curl -s "$url/v2/models/clip-text/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['model_stats'][0]['$1'])"; }

peak=0
for c in 4 8 16; do
  bench "closed-$c" -c "$c"
  peak=$(awk -v a="$peak" -v b="$(field "closed-$c" 6)" 'BEGIN { print (b > a ? b : a) }')
done
trickle=$(awk -v p="$peak" 'BEGIN { printf "%.1f", p / 10 }')
bench alone -r "$trickle" --priority 1 --timeout-us 10000000
base_p99=$(field alone 9)
rss_before=$(rss_mb)

echo "clip-text on $(nproc) cores: saturation $peak req/s (closed loop, best of concurrency 4, 8, 16); priority-1 trickle $trickle req/s."
echo
echo "| offered | goodput req/s | goodput / peak | P1 p99 ms | P1 p99 / unloaded | P1 errors | flood refused | flood p99 to refuse ms | started late | RSS MB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '| P1 alone | %s | | %.2f | 1.00 | %s | | | %s | %s |\n' "$(field alone 6)" \
  "$(awk -v v="$base_p99" 'BEGIN { print v / 1000 }')" "$(field alone 4)" "$(stat computed_late)" "$rss_before"
for k in 2 4; do
  offered=$(awk -v p="$peak" -v k="$k" 'BEGIN { printf "%.0f", p * k }')
  bench "flood-$k" -r "$offered" --priority 2 --timeout-us 100000 &
  flood=$!
  bench "urgent-$k" -r "$trickle" --priority 1 --timeout-us 10000000
  wait "$flood"
  goodput=$(awk -v a="$(field "flood-$k" 6)" -v b="$(field "urgent-$k" 6)" 'BEGIN { printf "%.1f", a + b }')
  p99=$(field "urgent-$k" 9)
  printf '| %s× (%s req/s) | %s | %s | %.2f | %s | %s | %s | %.2f | %s | %s |\n' "$k" "$offered" "$goodput" \
    "$(ratio "$goodput" "$peak")" "$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" "$(ratio "$p99" "$base_p99")" \
    "$(field "urgent-$k" 4)" "$(field "flood-$k" 4)" "$(awk -v v="$(field "flood-$k" 14)" 'BEGIN { print v / 1000 }')" \
    "$(stat computed_late)" "$(rss_mb)"
done
