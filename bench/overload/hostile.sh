#!/usr/bin/env bash
# bench/overload/hostile.sh: authenticated clip-text traffic while keyless
# clients attack the same HTTP port (issue 30), on one machine:
#   - 1000 slow connections that trickle a request head a byte at a time;
#   - a flood of requests that announce 60 MB bodies without a key.
# Rounds alternate quiet and attacked (closed loop, 8 clients, `braid
# bench`); reports the medians' ratios (goals: throughput ≥ 0.9×, p99 ≤ 1.5×)
# and the server's resident memory quiet and under attack.
# The attacker shares the machine; ATTACKER_NICE (default 0) lowers its
# priority, to come nearer an attacker on another machine.
#   bench/overload/hostile.sh [WINDOW_SECONDS [ROUNDS [FLOOD_PER_SECOND]]]   (default 2 3 100)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
window="${1:-2}"
rounds="${2:-3}"
flood="${3:-100}"
attacker_nice="${ATTACKER_NICE:-0}"
key=bench-key

start serve "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  --api-key "$key"
http="$(address serve http)"
url="http://$http"
metrics="http://$(address serve metrics)/metrics"
bench() {  # NAME → writes $work/NAME.csv
  "$build/braid" bench --url "$url" --api-key "$key" -m clip-text -c 8 --unique-inputs 64 \
    --warmup 1 --window "$window" --max-windows 3 --csv "$work/$1.csv" >/dev/null
}
field() { awk -F, -v c="$2" 'NR == 2 { print $c }' "$work/$1.csv"; }  # NAME COLUMN
rss_mb() { curl -s "$metrics" | awk '$1 == "braid_process_resident_memory_bytes" { printf "%.0f", $2 / 1048576 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

rss_quiet=$(rss_mb)
rss_peak=0
attack_seconds=$(awk -v w="$window" 'BEGIN { print 8 + 3 * w }')
for round in $(seq "$rounds"); do
  bench "quiet-$round"
  nice -n "$attacker_nice" python3 "$root/bench/overload/attacker.py" "${http%:*}" "${http##*:}" --slow 1000 \
    --flood "$flood" --seconds "$attack_seconds" >"$work/attack-$round.json" &
  attacker=$!
  sleep 4  # the slow connections open
  bench "attacked-$round"
  rss=$(rss_mb)
  rss_peak=$((rss > rss_peak ? rss : rss_peak))
  wait "$attacker"
done

quiet_rps=$(for r in $(seq "$rounds"); do field "quiet-$r" 6; done | median)
attacked_rps=$(for r in $(seq "$rounds"); do field "attacked-$r" 6; done | median)
quiet_p99=$(for r in $(seq "$rounds"); do field "quiet-$r" 9; done | median)
attacked_p99=$(for r in $(seq "$rounds"); do field "attacked-$r" 9; done | median)
errors=$(for r in $(seq "$rounds"); do field "attacked-$r" 4; done | awk '{ s += $1 } END { print s }')
echo "clip-text, 8 authenticated clients, on $(nproc) cores; $rounds rounds of 3 × ${window} s windows each, quiet and attacked alternately; medians."
echo "Attack (nice $attacker_nice): 1000 keyless slow connections and $flood keyless 60 MB announcements a second; last round: $(cat "$work/attack-$rounds.json")"
echo
echo "| | quiet | attacked | attacked / quiet | goal |"
echo "|---|---:|---:|---:|---|"
printf '| throughput req/s | %s | %s | %s | ≥ 0.9 |\n' "$quiet_rps" "$attacked_rps" "$(ratio "$attacked_rps" "$quiet_rps")"
printf '| p99 ms | %.2f | %.2f | %s | ≤ 1.5 |\n' "$(awk -v v="$quiet_p99" 'BEGIN { print v / 1000 }')" \
  "$(awk -v v="$attacked_p99" 'BEGIN { print v / 1000 }')" "$(ratio "$attacked_p99" "$quiet_p99")"
printf '| errors (authenticated) | | %s | | 0 |\n' "$errors"
printf '| resident memory MB | %s | %s (highest after a round) | | < 1024 + the quiet figure |\n' "$rss_quiet" "$rss_peak"
