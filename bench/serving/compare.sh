#!/usr/bin/env bash
# bench/serving/compare.sh: two builds of braid side by side, for a before /
# after figure of a request-path change. Both serve the same models at once;
# short measurements (braid bench, identity) alternate between them in each
# round, so that a host that drifts during the run moves both alike; the
# ratios new / old are per round, and the summary gives their medians.
#   bench/serving/compare.sh OLD_BRAID NEW_BRAID [ROUNDS]   (default 8)
# e.g. build the old commit in a worktree (git worktree add /tmp/old REV;
# cmake --preset release there; cmake --build /tmp/old/build --target braid)
# and compare /tmp/old/build/braid with build/braid.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" >&2; exit 2; }
old_binary=$1
new_binary=$2
rounds="${3:-8}"
needs python3

declare -A http grpc
for which in old new; do
  binary=$old_binary
  [[ $which == new ]] && binary=$new_binary
  start "$which" "$binary" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
    -m "$build/models"
  http[$which]=$(address "$which" http)
  grpc[$which]=$(address "$which" grpc)
done

measure() {  # WHICH ENDPOINT CONCURRENCY → "p50_us rps"
  "$build/braid" bench --url "http://${http[$1]}" --grpc "${grpc[$1]}" --endpoint "$2" \
    -m identity -c "$3" --warmup 0.5 --window 1 --max-windows 3 --input-data zero \
    --csv "$work/bench.csv" >/dev/null
  awk -F, 'NR == 2 { printf "%.1f %.0f\n", $7, $6 }' "$work/bench.csv"
}

echo "round endpoint concurrency | old p50_us rps | new p50_us rps"
for round in $(seq "$rounds"); do
  for point in "kserve-binary 1" "kserve-binary 64" "grpc 1" "grpc 64"; do
    read -r endpoint concurrency <<<"$point"
    old=$(measure old "$endpoint" "$concurrency")
    new=$(measure new "$endpoint" "$concurrency")
    echo "$round $endpoint $concurrency | $old | $new" | tee -a "$work/rounds"
  done
done

python3 - "$work/rounds" <<'PY'
import collections, statistics, sys
ratios = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    head, old, new = line.split("|")
    _, endpoint, concurrency = head.split()
    (old_p50, old_rps), (new_p50, new_rps) = map(float, old.split()), map(float, new.split())
    p50s, rpss = ratios[f"{endpoint} c{concurrency}"]
    p50s.append(new_p50 / old_p50)
    rpss.append(new_rps / old_rps)
print("\nnew / old, median of the rounds (range):")
for point, (p50s, rpss) in ratios.items():
    print(f"- {point}: p50 {statistics.median(p50s):.2f} ({min(p50s):.2f}–{max(p50s):.2f}), "
          f"throughput {statistics.median(rpss):.2f} ({min(rpss):.2f}–{max(rpss):.2f})")
PY
