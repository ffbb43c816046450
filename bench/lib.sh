# Sourced by the bench/*/run.sh scripts: the folders, a scratch folder
# removed on exit with every process started through `start`, and helpers.
#   $root  the repository    $build  its build folder    $work  scratch
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BRAID_BUILD_DIR:-$root/build}"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# needs TOOL...: exits with a hint when one is missing.
needs() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$(basename "$(dirname "$0")") needs $tool (apt-get install $tool)" >&2; exit 1; }
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME COMMAND...: runs COMMAND in the background (stopped on exit)
# and waits up to 60 s for the first line of its stdout (a ready line).
start() {
  local name=$1
  shift
  "$@" >"$work/$name.ready" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 600); do [[ -s "$work/$name.ready" ]] && return; sleep 0.1; done
  echo "$name did not start: $(tail -3 "$work/$name.log")" >&2
  exit 1
}

# start_nginx HTTP_BLOCK: nginx in the background (stopped on exit) with a
# scratch prefix, serving what HTTP_BLOCK (the inside of its http {} block:
# upstreams and servers) says. Waits 0.5 s for it.
start_nginx() {
  local block=$1
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  $block
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!)
  sleep 0.5
}

# address NAME KEY: host:port after KEY= in NAME's ready line.
address() { sed -nE "s/.*$2=([^ ]+).*/\1/p" "$work/$1.ready" | head -1; }

# wrk_measure URL CONCURRENCY SECONDS [BODY_FILE [HEADER_LEN [CONTENT_TYPE]]]
# → "p50_us rps non2xx": a GET, or a POST of the file (with the binary
# tensor header length when given).
wrk_measure() {
  local url=$1 connections=$2 seconds=$3 body=${4:-} header=${5:-} type=${6:-application/json} threads=2
  [[ $connections == 1 ]] && threads=1
  local out
  if [[ -n $body ]]; then
    out=$(BODY_FILE=$body HEADER_LEN=$header CONTENT_TYPE=$type wrk -t"$threads" -c"$connections" \
      -d"${seconds}s" --latency -s "$root/bench/serving/post_file.lua" "$url")
  else
    out=$(wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$url")
  fi
  echo "$out" | awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
    $1 == "50%" { p50 = us($2) }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "Non-2xx" { bad = $NF }
    END { printf "%.1f %.1f %s\n", p50, rps, (bad == "" ? 0 : bad) }'
}

# polling_idle COMMAND...: runs COMMAND while /dev/cpu_dma_latency is held at
# 0 µs, the PM QoS request of tuned's latency-performance profile: idle CPUs
# poll instead of halting, so waking one (a client's CPU when its answer
# comes) no longer costs a trip through the hypervisor. Needs root: check
# `[[ -w /dev/cpu_dma_latency ]]` first.
polling_idle() {
  local qos status=0
  exec {qos}>/dev/cpu_dma_latency || return 1
  printf 0 >&"$qos"
  "$@" || status=$?
  exec {qos}>&-
  return "$status"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
