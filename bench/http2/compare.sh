#!/usr/bin/env bash
# bench/http2/compare.sh: HTTP/1.1 keep-alive over plaintext and over TLS,
# wrk with 64 connections, for two braid binaries side by side (a
# before/after pair for a change to the TLS path): four braid serve
# processes (each binary plain and --tls-cert), measurements taking turns
# in every round, and braid's own CPU per request beside each.
#   bench/http2/compare.sh OLD_BRAID [SECONDS] [ROUNDS]   (defaults 4, 3)
# The new binary is the build's (BRAID_BUILD_DIR, default build/).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
old=${1:?usage: bench/http2/compare.sh OLD_BRAID [SECONDS] [ROUNDS]}
seconds=${2:-4}
rounds=${3:-3}
needs wrk openssl python3

python3 - "$work" <<'PY'
import json, sys
open(f"{sys.argv[1]}/identity.json", "w").write(json.dumps(
    {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [float(i) for i in range(16)]}]}))
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

declare -A url pid
for version in old new; do
  binary=$old
  [[ $version == new ]] && binary=$build/braid
  start "$version-plain" "$binary" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
  pid[$version-plain]=${pids[-1]}
  url[$version-plain]="http://$(address "$version-plain" http)/v2/models/identity/infer"
  start "$version-tls" "$binary" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
    --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
  pid[$version-tls]=${pids[-1]}
  url[$version-tls]="https://$(address "$version-tls" http)/v2/models/identity/infer"
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
echo "| round | server | req/s | braid CPU µs/request | errors |"
echo "|---|---|---:|---:|---:|"
for round in $(seq "$rounds"); do
  for name in old-plain old-tls new-plain new-tls; do
    wrk_measure "${url[$name]}" 64 1 "$work/identity.json" >/dev/null
    before=$(cpu_ticks "${pid[$name]}")
    read -r _ rps bad < <(wrk_measure "${url[$name]}" 64 "$seconds" "$work/identity.json")
    after=$(cpu_ticks "${pid[$name]}")
    awk -v round="$round" -v name="$name" -v rps="$rps" -v bad="$bad" -v ticks=$((after - before)) \
      -v tick="$tick_us" -v seconds="$seconds" \
      'BEGIN { printf "| %d | %s | %.0f | %.1f | %s |\n", round, name, rps, ticks * tick / (rps * seconds), bad }'
  done
done
