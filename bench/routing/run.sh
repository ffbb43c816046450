#!/usr/bin/env bash
# bench/routing: what `braid router` costs and how its policies share load,
# all in one run on loopback, driven by braid bench (closed loop).
#   - two replicas whose clip-text runs on one intra-op thread, behind the
#     router, vs one replica with two threads: the same cores (goal ≥ 0.95×
#     throughput);
#   - the latency the router adds: identity at concurrency 1 through the
#     router vs straight to a replica (goal ≤ 5% at p50 and p99);
#   - the same through nginx as a reverse proxy (upstream keep-alive), when
#     nginx is installed: what a proxy hop costs on this machine;
#   - three replicas, one slow (clip-text on one thread, the others on two),
#     balanced by each router policy and by HAProxy with and without
#     braid's agent weights: each replica's share of the requests and the p99.
#   bench/routing/run.sh [WINDOW_SECONDS]      (default 2; three windows per level)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
window="${1:-2}"

# A repository whose clip-text uses one intra-op thread.
cp -rL "$build/models" "$work/one-thread"
sed -i 's/intra_op_threads: 2/intra_op_threads: 1/' "$work/one-thread/clip-text/config.yaml"

declare -A http metrics
braid() {  # NAME ARGS...: a braid process; sets http[NAME] (and metrics[NAME] for serve)
  start "$1" "$build/braid" "${@:2}"
  http[$1]="http://$(address "$1" http)"
  metrics[$1]="http://$(address "$1" metrics)"
}
serve() { braid "$1" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 "${@:2}"; }
router() { braid "$1" router --host 127.0.0.1 --http-port 0 "${@:2}"; }
bench() {  # URL MODEL CONCURRENCY → "rps p50_us p99_us errors"
  "$build/braid" bench --url "$1" -m "$2" -c "$3" --unique-inputs 64 --warmup 1 --window "$window" \
    --max-windows 3 --csv "$work/bench.csv" >/dev/null
  awk -F, 'NR == 2 { print $6, $7, $9, $4 }' "$work/bench.csv"
}
served() {  # NAME → clip-text requests answered so far
  local count
  count=$(curl -s "${metrics[$1]}/metrics" |
    sed -n 's/^braid_requests_total{protocol="http",model="clip-text",code="200"} //p' | head -1)
  echo "${count:-0}"
}

serve two-threads
read -r one_rps _ _ _ <<<"$(bench "${http[two-threads]}" clip-text 16)"
# The router's added latency: the same replica straight and through a router.
router via --replica "${http[two-threads]}"
read -r _ direct_p50 direct_p99 _ <<<"$(bench "${http[two-threads]}" identity 1)"
read -r _ routed_p50 routed_p99 _ <<<"$(bench "${http[via]}" identity 1)"
nginx_p50=""
if command -v nginx >/dev/null; then
  nginx_port=$(free_port)
  start_nginx "upstream replica { server ${http[two-threads]#http://}; keepalive 64; }
  server { listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://replica; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  read -r _ nginx_p50 _ _ <<<"$(bench "http://127.0.0.1:$nginx_port" identity 1)"
  kill "${pids[-1]}"
  unset 'pids[-1]'
fi
read -r _ direct_text_p50 direct_text_p99 _ <<<"$(bench "${http[two-threads]}" clip-text 1)"
read -r _ routed_text_p50 routed_text_p99 _ <<<"$(bench "${http[via]}" clip-text 1)"
kill "${pids[-1]}" "${pids[-2]}"
serve a -m "$work/one-thread"
serve b -m "$work/one-thread"
router pair --replica "${http[a]}" --replica "${http[b]}" --policy least_outstanding
read -r pair_rps _ _ _ <<<"$(bench "${http[pair]}" clip-text 16)"
kill "${pids[-1]}" "${pids[-2]}" "${pids[-3]}"
echo "| setup | clip-text req/s at concurrency 16 |"
echo "|---|---:|"
echo "| one replica, 2 intra-op threads | $one_rps |"
echo "| router + two replicas, 1 thread each | $pair_rps |"
echo
echo "- two 1-thread replicas behind the router / one 2-thread replica: **$(ratio "$pair_rps" "$one_rps")×** (goal ≥ 0.95)"
added() {  # LABEL DIRECT_P50 ROUTED_P50 DIRECT_P99 ROUTED_P99
  awk -v l="$1" -v dp="$2" -v rp="$3" -v d9="$4" -v r9="$5" 'BEGIN {
    printf "- %s at concurrency 1: p50 %.0f µs direct, %.0f µs routed (**%+.1f%%**, %+.0f µs); p99 %.0f µs direct, %.0f µs routed (**%+.1f%%**) (goal ≤ +5%%)\n",
      l, dp, rp, (rp / dp - 1) * 100, rp - dp, d9, r9, (r9 / d9 - 1) * 100 }'
}
added "clip-text (one request ≈ one model run)" "$direct_text_p50" "$routed_text_p50" "$direct_text_p99" "$routed_text_p99"
added "identity (no computation: the router's cost alone)" "$direct_p50" "$routed_p50" "$direct_p99" "$routed_p99"
if [[ -n $nginx_p50 ]]; then
  awk -v dp="$direct_p50" -v np="$nginx_p50" -v rp="$routed_p50" 'BEGIN {
    printf "- identity through nginx as a reverse proxy instead (same replica, same run): p50 %.0f µs (%+.0f µs; the router: %+.0f µs)\n",
      np, np - dp, rp - dp }'
fi

serve slow -m "$work/one-thread" --agent-port 0
serve fast1 --agent-port 0
serve fast2 --agent-port 0
share_row() {  # LABEL URL: clip-text at concurrency 16 through URL, and each replica's share
  local before after rps p99 errors
  before=($(served slow) $(served fast1) $(served fast2))
  read -r rps _ p99 errors <<<"$(bench "$2" clip-text 16)"
  after=($(served slow) $(served fast1) $(served fast2))
  awk -v p="$1" -v rps="$rps" -v p99="$p99" -v s0="${before[0]}" -v s1="${before[1]}" -v s2="${before[2]}" \
      -v a0="${after[0]}" -v a1="${after[1]}" -v a2="${after[2]}" 'BEGIN {
    d0 = a0 - s0; d1 = a1 - s1; d2 = a2 - s2; t = d0 + d1 + d2
    printf "| %s | %.1f | %.1f | %.2f | %.2f | %.2f |\n", p, rps, p99 / 1000, d0 / t, d1 / t, d2 / t }'
}
echo
echo "Three replicas, \`slow\` with clip-text on one intra-op thread; clip-text at concurrency 16 through"
echo "\`braid router\` under each policy and, when haproxy is installed, through HAProxy 2.6 running"
echo "deploy/haproxy/haproxy.cfg (addresses rewritten) with the replicas' agent weights, and without them"
echo "(its round robin):"
echo
echo "| balancer | req/s | p99 ms | share slow | share fast1 | share fast2 |"
echo "|---|---:|---:|---:|---:|---:|"
for policy in round_robin least_outstanding load_weighted cache_affinity; do
  router "r-$policy" --replica "${http[slow]}" --replica "${http[fast1]}" --replica "${http[fast2]}" --policy "$policy"
  share_row "braid router $policy" "${http[r-$policy]}"
  kill "${pids[-1]}"
done
if command -v haproxy >/dev/null; then
  for weights in agent none; do
    port=$(free_port)
    edits=(-e "s|stats socket [^ ]*|stats socket $work/haproxy.sock|" -e "s|bind :8000|bind 127.0.0.1:$port|"
      -e "s|bind :8001|bind 127.0.0.1:$(free_port)|")
    i=1
    for name in slow fast1 fast2; do
      edits+=(-e "s|10.0.0.$i:8000 agent-port 8003|${http[$name]#http://} agent-port $(address "$name" agent | cut -d: -f2)|"
        -e "s|10.0.0.$i:8001 agent-port 8003|$(address "$name" grpc) agent-port $(address "$name" agent | cut -d: -f2)|")
      i=$((i + 1))
    done
    [[ $weights == none ]] && edits+=(-e "s| agent-check agent-inter 500ms||")
    sed "${edits[@]}" "$root/deploy/haproxy/haproxy.cfg" >"$work/haproxy-$weights.cfg"
    start "haproxy-$weights" sh -c "echo started; exec haproxy -db -f $work/haproxy-$weights.cfg"
    sleep 2  # its first health and agent checks
    label="HAProxy, agent weights"
    [[ $weights == none ]] && label="HAProxy, round robin"
    share_row "$label" "http://127.0.0.1:$port"
    kill "${pids[-1]}"
    unset 'pids[-1]'
    sleep 0.5
  done
fi
