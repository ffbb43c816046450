#!/usr/bin/env bash
# bench/serving/syscalls.sh: what one request costs braid serve in system
# calls and context switches, counted by perf over a wrk run of identity over
# HTTP JSON, at concurrency 1 and 64; then one gRPC call at concurrency 1
# (braid bench) to braid and to the bare grpc++ echo (bench_grpc_floor), with
# the CPU time each server spent per call. Counts, not times: a wake-up or a
# lock handed between threads shows as futex calls and context switches
# whatever the machine's speed that day.
#   bench/serving/syscalls.sh [SECONDS]      (default 4 per concurrency)
#   BRAID_SERVE_FLAGS="..." adds braid serve flags (a before/after pair).
# Needs: wrk, perf with the syscalls tracepoints, python3, and root (or
# kernel.perf_event_paranoid ≤ 1 and a readable tracefs).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
seconds="${1:-4}"
needs wrk perf python3
if ! perf stat -e syscalls:sys_enter_futex -o /dev/null -- true 2>/dev/null; then
  echo "syscalls.sh: perf cannot count syscalls:sys_enter_futex here (run as root, or lower" \
    "kernel.perf_event_paranoid and make tracefs readable)" >&2
  exit 1
fi

python3 -c 'import json, sys; json.dump({"inputs": [{"name": "input", "shape": [1, 16],
  "datatype": "FP32", "data": [float(i) for i in range(16)]}]}, open(sys.argv[1], "w"))' \
  "$work/identity.json"
# shellcheck disable=SC2086
start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  ${BRAID_SERVE_FLAGS:-}
url="http://$(address braid http)/v2/models/identity/infer"
pid=${pids[-1]}
start grpc_floor "$build/bench/serving/bench_grpc_floor"
floor_pid=${pids[-1]}
events=(futex recvfrom sendmsg epoll_wait)

# per_answer LABEL RATE EVENT...: a table row from $work/perf.csv (perf stat
# -x,), each syscall's count divided by the answers, then context switches
# and, when task-clock was counted, CPU µs per answer. Every answer is one
# sendmsg, HTTP's and gRPC's alike (a gRPC answer's headers, message and
# trailers leave together).
per_answer() {
  local label=$1 rate=$2
  shift 2
  awk -F, -v label="$label" -v rate="$rate" -v names="$*" '
    /^[0-9]/ { count[$3] = $1 }
    END {
      n = count["syscalls:sys_enter_sendmsg"]
      if (n == 0) { printf "| %s | %.0f | no answers counted |\n", label, rate; exit }
      printf "| %s | %.0f |", label, rate
      k = split(names, name, " ")
      for (i = 1; i <= k; ++i) printf " %.2f |", count["syscalls:sys_enter_" name[i]] / n
      printf " %.2f |", count["context-switches"] / n
      if ("task-clock" in count) printf " %.1f |", count["task-clock"] * 1000 / n
      printf "\n"
    }' "$work/perf.csv"
}

echo "| concurrency | req/s | $(printf '%s / req | ' "${events[@]}")context switches / req |"
echo "|---:|---:|$(printf -- '---:|%.0s' "${events[@]}")---:|"
for c in 1 64; do
  wrk_measure "$url" "$c" 1 "$work/identity.json" >/dev/null  # warm-up
  perf stat -x, -o "$work/perf.csv" -p "$pid" \
    -e "$(printf 'syscalls:sys_enter_%s,' "${events[@]}")context-switches" -- sleep "$seconds" &
  counting=$!
  read -r _ rps _ <<<"$(wrk_measure "$url" "$c" $((seconds + 1)) "$work/identity.json")"
  wait "$counting"
  per_answer "$c" "$rps" "${events[@]}"
done

grpc_events=(futex sendmsg recvmsg epoll_wait write)
echo
echo "| gRPC, concurrency 1 | calls/s | $(printf '%s / call | ' "${grpc_events[@]}")context switches / call | server CPU µs / call |"
echo "|---|---:|$(printf -- '---:|%.0s' "${grpc_events[@]}")---:|---:|"
for server in braid echo; do
  if [[ $server == braid ]]; then
    target=$(address braid grpc) counted=$pid
  else
    target=$(address grpc_floor grpc) counted=$floor_pid
  fi
  perf stat -x, -o "$work/perf.csv" -p "$counted" \
    -e "$(printf 'syscalls:sys_enter_%s,' "${grpc_events[@]}")context-switches,task-clock" &
  counting=$!  # counts until the bench is done (SIGINT makes perf write them)
  # The model's metadata (for the request) comes from braid over HTTP.
  "$build/braid" bench --endpoint grpc --grpc "$target" --url "http://$(address braid http)" \
    -m identity -c 1 --warmup 0 --window "$seconds" --max-windows 1 --input-data zero \
    --csv "$work/grpc.csv" >/dev/null
  kill -INT "$counting"
  wait "$counting" || true
  rps=$(awk -F, 'NR == 2 { print $6 }' "$work/grpc.csv")
  per_answer "$server" "$rps" "${grpc_events[@]}"
done
