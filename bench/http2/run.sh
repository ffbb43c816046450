#!/usr/bin/env bash
# bench/http2: HTTP/2 and TLS on braid's REST port, side by side in one run,
# on the identity model (KServe JSON, the cheapest request: the figures
# measure the transport, not a model):
#   - h2c (h2load, one connection, 64 streams) vs HTTP/1.1 keep-alive (wrk,
#     64 connections): goal ≥ 0.9×;
#   - TLS h2 and TLS HTTP/1.1 keep-alive at 64 each vs their plaintext
#     counterpart: goal ≥ 0.8×; h2 over 64 connections too (h2load -c64 -m1);
#   - h2c over 2 connections × 32 streams: what one connection's limit is
#     (a connection is served by one network thread);
#   - the cost of a full TLS handshake (openssl s_time -new: one client,
#     new connections one after another, no resumption), TLS 1.3 and 1.2,
#     RSA-2048 certificate, beside openssl s_server with the same
#     certificate as the reference.
# Two braid serve processes (plaintext, and --tls-cert with a certificate
# made here) run side by side; every measurement runs 3 times, the
# configurations taking turns so that a drift of the machine hits them all,
# and the median is printed.
#   bench/http2/run.sh [SECONDS]      (default 5 per measurement)
#   BRAID_SERVE_FLAGS="..." adds braid serve flags to both (a before/after pair).
# Needs: wrk, h2load, openssl (apt-get install wrk nghttp2-client openssl).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
seconds="${1:-5}"
runs=3
needs wrk h2load openssl python3

python3 - "$work" <<'PY'
import json, sys
open(f"{sys.argv[1]}/identity.json", "w").write(json.dumps(
    {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [float(i) for i in range(16)]}]}))
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

# shellcheck disable=SC2086
start plain "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 ${BRAID_SERVE_FLAGS:-}
plain_pid=${pids[-1]}
# shellcheck disable=SC2086
start tls "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" ${BRAID_SERVE_FLAGS:-}
tls_pid=${pids[-1]}
plain_url="http://$(address plain http)/v2/models/identity/infer"
tls_url="https://$(address tls http)/v2/models/identity/infer"
tls_address="$(address tls http)"
# The handshake reference: openssl's own server, same certificate.
reference_address="127.0.0.1:$(free_port)"
openssl s_server -accept "$reference_address" -cert "$work/cert.pem" -key "$work/key.pem" -quiet \
  </dev/null >"$work/s_server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/${reference_address/://}") 2>/dev/null && break; sleep 0.1; done

# h2load_measure URL CLIENTS STREAMS → "rps errors": POSTs of the identity
# body for SECONDS after a 1 s warm-up; errors are failed, errored and
# non-2xx requests. Stops the run if h2load did not speak h2 (or h2c).
h2load_measure() {
  local url=$1 clients=$2 streams=$3 out
  out=$(h2load -c"$clients" -m"$streams" -t1 -D "$seconds" --warm-up-time 1 -d "$work/identity.json" \
    -H 'content-type: application/json' "$url")
  if ! grep -qE '^Application protocol: h2c?$' <<<"$out"; then
    echo "h2load did not negotiate HTTP/2 with $url: $(grep -i protocol <<<"$out")" >&2
    exit 1
  fi
  awk '
    /^finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) rps = $i + 0 }
    /^requests:/ { for (i = 1; i <= NF; i++) { if ($(i + 1) ~ /^failed/) failed = $i; if ($(i + 1) ~ /^errored/) errored = $i } }
    /^status codes:/ { ok = $3 + 0; other = $5 + $7 + $9 }
    END { printf "%.1f %d\n", rps, failed + errored + other }' <<<"$out"
}
# cpu_ticks PID → the process's user and system CPU so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
# wrk_rps URL CONNECTIONS SERVER_PID → "rps errors cpu_us": HTTP/1.1
# keep-alive POSTs (lib.sh's wrk_measure) after a 1 s warm-up run, and the
# server's own CPU per request during the measured run (what the client's
# TLS costs on the same cores does not count there).
wrk_rps() {
  wrk_measure "$1" "$2" 1 "$work/identity.json" >/dev/null
  local p50 rps bad before after
  before=$(cpu_ticks "$3")
  read -r p50 rps bad <<<"$(wrk_measure "$1" "$2" "$seconds" "$work/identity.json")"
  after=$(cpu_ticks "$3")
  echo "$rps $bad $(awk -v t="$((after - before))" -v us="$tick_us" -v n="$rps" -v s="$seconds" \
    'BEGIN { printf "%.1f", (n > 0 ? t * us / (n * s) : 0) }')"
}
# handshake_rate HOST:PORT VERSION_FLAG → full handshakes a second: openssl
# s_time with new connections only, timed by the wall clock around it
# (s_time prints whole seconds).
handshake_rate() {
  local started ended out count
  started=$(date +%s%N)
  out=$(openssl s_time -connect "$1" -new "$2" -time "$seconds" 2>&1 </dev/null)
  ended=$(date +%s%N)
  count=$(sed -nE 's/^([0-9]+) connections in [0-9.]+ real seconds.*/\1/p' <<<"$out" | head -1)
  [[ -n $count ]] || { echo "openssl s_time $1 $2 failed: $(tail -3 <<<"$out")" >&2; exit 1; }
  awk -v n="$count" -v ns="$((ended - started))" 'BEGIN { printf "%.1f 0\n", n / (ns / 1e9) }'
}

names=(h2c_1x64 h1_64 h2c_64x1 h2c_2x32 tls_h2_1x64 tls_h1_64 tls_h2_64x1 hs_13 hs_13_ref hs_12 hs_12_ref)
declare -A label=(
  [h2c_1x64]="h2c (prior knowledge), h2load 1 connection × 64 streams"
  [h1_64]="HTTP/1.1 keep-alive, wrk 64 connections"
  [h2c_64x1]="h2c, h2load 64 connections × 1 stream"
  [h2c_2x32]="h2c, h2load 2 connections × 32 streams"
  [tls_h2_1x64]="TLS h2 (ALPN), h2load 1 connection × 64 streams"
  [tls_h1_64]="TLS HTTP/1.1 keep-alive, wrk 64 connections"
  [tls_h2_64x1]="TLS h2, h2load 64 connections × 1 stream"
  [hs_13]="TLS 1.3 full handshakes to braid, s_time, 1 client"
  [hs_13_ref]="TLS 1.3 full handshakes to openssl s_server, s_time, 1 client"
  [hs_12]="TLS 1.2 full handshakes to braid, s_time, 1 client"
  [hs_12_ref]="TLS 1.2 full handshakes to openssl s_server, s_time, 1 client"
)
measure() {
  case $1 in
    h2c_1x64) h2load_measure "$plain_url" 1 64 ;;
    h1_64) wrk_rps "$plain_url" 64 "$plain_pid" ;;
    h2c_64x1) h2load_measure "$plain_url" 64 1 ;;
    h2c_2x32) h2load_measure "$plain_url" 2 32 ;;
    tls_h2_1x64) h2load_measure "$tls_url" 1 64 ;;
    tls_h1_64) wrk_rps "$tls_url" 64 "$tls_pid" ;;
    tls_h2_64x1) h2load_measure "$tls_url" 64 1 ;;
    hs_13) handshake_rate "$tls_address" -tls1_3 ;;
    hs_13_ref) handshake_rate "$reference_address" -tls1_3 ;;
    hs_12) handshake_rate "$tls_address" -tls1_2 ;;
    hs_12_ref) handshake_rate "$reference_address" -tls1_2 ;;
  esac
}

# Stops the run if a braid serve has gone, with the end of its log.
alive() {
  local server pid_var
  for server in plain tls; do
    pid_var="${server}_pid"
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
      echo "braid serve ($server) exited during the run: $(tail -5 "$work/$server.log")" >&2
      exit 1
    fi
  done
}

declare -A rates errors cpus
for run in $(seq "$runs"); do
  for name in "${names[@]}"; do
    echo "run $run/$runs: ${label[$name]}" >&2
    result=$(measure "$name")
    alive
    read -r rps bad cpu <<<"$result"
    rates[$name]+="$rps "
    [[ -n ${cpu:-} ]] && cpus[$name]+="$cpu "
    errors[$name]=$((${errors[$name]:-0} + bad))
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A med
echo "| what | runs (req/s or handshakes/s) | median | errors |"
echo "|---|---|---:|---:|"
for name in "${names[@]}"; do
  med[$name]=$(median "${rates[$name]}")
  echo "| ${label[$name]} | $(sed 's/ $//; s/ / · /g' <<<"${rates[$name]}") | ${med[$name]} | ${errors[$name]} |"
done
us() { awk -v r="$1" 'BEGIN { printf "%.0f", (r > 0 ? 1e6 / r : 0) }'; }
echo
echo "- h2c (1 connection × 64 streams) / HTTP/1.1 keep-alive (64 connections): **$(ratio "${med[h2c_1x64]}" "${med[h1_64]}")×** (goal ≥ 0.9); over 2 connections × 32 streams: $(ratio "${med[h2c_2x32]}" "${med[h1_64]}")×"
echo "- TLS / plaintext at 64: h2 1×64 **$(ratio "${med[tls_h2_1x64]}" "${med[h2c_1x64]}")×**, HTTP/1.1 keep-alive **$(ratio "${med[tls_h1_64]}" "${med[h1_64]}")×** (goals ≥ 0.8); h2 64×1 $(ratio "${med[tls_h2_64x1]}" "${med[h2c_64x1]}")×"
echo "- braid's own CPU per request, HTTP/1.1 keep-alive at 64: plaintext $(median "${cpus[h1_64]}") µs, TLS $(median "${cpus[tls_h1_64]}") µs (runs: $(sed 's/ $//; s/ / · /g' <<<"${cpus[h1_64]}") and $(sed 's/ $//; s/ / · /g' <<<"${cpus[tls_h1_64]}")): TLS / plaintext at equal server CPU **$(ratio "$(median "${cpus[h1_64]}")" "$(median "${cpus[tls_h1_64]}")")×**"
echo "- full TLS handshake, one client in sequence, client and server CPU together (RSA-2048, loopback): TLS 1.3 **$(us "${med[hs_13]}") µs** (openssl s_server: $(us "${med[hs_13_ref]}") µs), TLS 1.2 $(us "${med[hs_12]}") µs (s_server: $(us "${med[hs_12_ref]}") µs)"
