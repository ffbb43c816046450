#!/usr/bin/env bash
# bench/serving: serving overhead of braid over HTTP (JSON and binary) and
# gRPC on the identity model, a 602 KB image tensor over each, nginx
# returning a static 200 as the HTTP ceiling and a bare grpc++ server echoing
# ModelInfer (bench_grpc_floor) as the gRPC one, all measured in one run with
# the same load generators (wrk for HTTP, braid bench for gRPC).
#   bench/serving/run.sh [SECONDS]      (default 5 per measurement)
#   BRAID_SERVE_FLAGS="..." adds braid serve flags (a before/after pair).
# Needs: wrk, nginx, python3 (scripts/setup does not install the first two:
# apt-get install wrk nginx).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
seconds="${1:-5}"
needs wrk nginx python3

nginx_port=$(free_port)
start_nginx "server { listen 127.0.0.1:$nginx_port;
  location / { default_type application/json; return 200 '{\"ok\":true}'; } }"

python3 - "$work" <<'PY'
import json, struct, sys
work = sys.argv[1]
def write(name, text): open(f"{work}/{name}", "wb").write(text)
write("identity.json", json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                               "data": [float(i) for i in range(16)]}]}).encode())
def binary(name, model_input, shape, count):
    header = json.dumps({"inputs": [{"name": model_input, "shape": shape, "datatype": "FP32",
                                     "parameters": {"binary_data_size": count * 4}}],
                         "outputs": [{"name": "output" if model_input == "input" else "image_embeds",
                                      "parameters": {"binary_data": True}}]}).encode()
    write(name, header + struct.pack(f"<{count}f", *([0.5] * count)))
    write(name + ".len", str(len(header)).encode())
binary("identity.bin", "input", [1, 16], 16)
count = 3 * 224 * 224
write("image.json", json.dumps({"inputs": [{"name": "input", "shape": [1, count], "datatype": "FP32",
                                            "data": [0.5] * count}]}).encode())
binary("image.bin", "input", [1, count], count)
PY

# The 602 KB image tensor goes to an identity model that takes [N,-1], so
# that the figures measure moving the tensor, not computing on it.
cp -rL "$build/models" "$work/models"
mkdir -p "$work/models/identity-wide/1"
sed 's/dims: \[16\]/dims: [-1]/' "$work/models/identity/config.yaml" >"$work/models/identity-wide/config.yaml"
"$build/tools/modelgen/modelgen" identity-wide "$work/models/identity-wide/1/model.onnx"

# BRAID_SERVE_FLAGS: extra `braid serve` flags, for before/after runs
# (e.g. BRAID_SERVE_FLAGS="--inline-max-us 0").
# shellcheck disable=SC2086
start braid "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
  -m "$work/models" ${BRAID_SERVE_FLAGS:-}
http_port=$(address braid http | cut -d: -f2)
grpc_port=$(address braid grpc | cut -d: -f2)
start grpc_floor "$build/bench/serving/bench_grpc_floor"
floor_port=$(address grpc_floor grpc | cut -d: -f2)

measure_http() { wrk_measure "$1" "$2" "$seconds" "${@:3}"; }  # URL CONCURRENCY [BODY [HEADER_LEN [TYPE]]]
measure_grpc() {  # PORT MODEL CONCURRENCY [braid bench flags...] → "p50_us rps errors"
  local port=$1 model=$2 concurrency=$3
  shift 3
  # The model's metadata (for the request) comes from braid over HTTP.
  "$build/braid" bench --endpoint grpc --grpc "127.0.0.1:$port" --url "http://127.0.0.1:$http_port" \
    -m "$model" -c "$concurrency" --warmup 0.5 --window "$(awk -v s="$seconds" 'BEGIN { print s / 3 }')" \
    --max-windows 3 --input-data zero --csv "$work/grpc.csv" "$@" >/dev/null
  awk -F, 'NR == 2 { printf "%.1f %.1f %s\n", $7, $6, $4 }' "$work/grpc.csv"
}

echo "| what | concurrency | p50 µs | req/s | errors |"
echo "|---|---:|---:|---:|---:|"
declare -A result
row() { result["$1/$2"]="$3"; read -r p50 rps errors <<<"$3"; echo "| $1 | $2 | $p50 | $rps | $errors |"; }
for c in 1 16 64; do row "nginx static 200" $c "$(measure_http "http://127.0.0.1:$nginx_port/" $c)"; done
for c in 1 16 64; do row "braid HTTP JSON identity" $c "$(measure_http "http://127.0.0.1:$http_port/v2/models/identity/infer" $c "$work/identity.json")"; done
for c in 1 16 64; do row "braid HTTP binary identity" $c "$(measure_http "http://127.0.0.1:$http_port/v2/models/identity/infer" $c "$work/identity.bin" "$(cat "$work/identity.bin.len")" application/octet-stream)"; done
for c in 1 16 64; do row "bare grpc++ echo (bench_grpc_floor)" $c "$(measure_grpc "$floor_port" identity $c)"; done
for c in 1 16 64; do row "braid gRPC identity" $c "$(measure_grpc "$grpc_port" identity $c)"; done
# The concurrency-1 rows again with idle CPUs polling (when this script may
# hold /dev/cpu_dma_latency): at concurrency 1 each side sleeps while the
# other works, and on a VM whose idle vCPUs halt every wake-up crosses the
# hypervisor.
polling=" (idle CPUs polling)"
if [[ -w /dev/cpu_dma_latency ]]; then
  row "nginx static 200$polling" 1 "$(polling_idle measure_http "http://127.0.0.1:$nginx_port/" 1)"
  row "braid HTTP JSON identity$polling" 1 "$(polling_idle measure_http "http://127.0.0.1:$http_port/v2/models/identity/infer" 1 "$work/identity.json")"
  row "braid HTTP binary identity$polling" 1 "$(polling_idle measure_http "http://127.0.0.1:$http_port/v2/models/identity/infer" 1 "$work/identity.bin" "$(cat "$work/identity.bin.len")" application/octet-stream)"
  row "bare grpc++ echo (bench_grpc_floor)$polling" 1 "$(polling_idle measure_grpc "$floor_port" identity 1)"
  row "braid gRPC identity$polling" 1 "$(polling_idle measure_grpc "$grpc_port" identity 1)"
fi
for c in 4; do
  row "602 KB tensor, HTTP JSON" $c "$(measure_http "http://127.0.0.1:$http_port/v2/models/identity-wide/infer" $c "$work/image.json")"
  row "602 KB tensor, HTTP binary" $c "$(measure_http "http://127.0.0.1:$http_port/v2/models/identity-wide/infer" $c "$work/image.bin" "$(cat "$work/image.bin.len")" application/octet-stream)"
  row "602 KB tensor, gRPC raw" $c "$(measure_grpc "$grpc_port" identity-wide $c --shape input=1,150528)"
done

field() { read -r p50 rps errors <<<"${result[$1]}"; [[ $2 == p50 ]] && echo "$p50" || echo "$rps"; }
echo
echo "- HTTP keep-alive p50 at concurrency 1, identity JSON: $(field 'braid HTTP JSON identity/1' p50) µs; binary: $(field 'braid HTTP binary identity/1' p50) µs; gRPC: $(field 'braid gRPC identity/1' p50) µs (goals: HTTP ≤ 100 µs, gRPC ≤ 150 µs; Triton's published no-op 173 µs)"
if [[ -n ${result["braid gRPC identity$polling/1"]:-} ]]; then
  echo "- The same with idle CPUs polling (/dev/cpu_dma_latency held at 0): identity JSON $(field "braid HTTP JSON identity$polling/1" p50) µs; binary: $(field "braid HTTP binary identity$polling/1" p50) µs; gRPC: $(field "braid gRPC identity$polling/1" p50) µs (bare grpc++ echo $(field "bare grpc++ echo (bench_grpc_floor)$polling/1" p50) µs, nginx $(field "nginx static 200$polling/1" p50) µs)"
else
  echo "- (not measured with idle CPUs polling: this run may not write /dev/cpu_dma_latency)"
fi
echo "- gRPC p50 at concurrency 1, braid identity / bare grpc++ echo: $(field 'braid gRPC identity/1' p50) / $(field 'bare grpc++ echo (bench_grpc_floor)/1' p50) µs = **$(ratio "$(field 'braid gRPC identity/1' p50)" "$(field 'bare grpc++ echo (bench_grpc_floor)/1' p50)")**; throughput at 64: **$(ratio "$(field 'braid gRPC identity/64' rps)" "$(field 'bare grpc++ echo (bench_grpc_floor)/64' rps)")** of the echo's"
echo "- braid HTTP JSON identity throughput at 64 / nginx static at 64: **$(ratio "$(field 'braid HTTP JSON identity/64' rps)" "$(field 'nginx static 200/64' rps)")** (goal ≥ 0.6)"
echo "- 602 KB tensor, binary / JSON throughput: **$(ratio "$(field '602 KB tensor, HTTP binary/4' rps)" "$(field '602 KB tensor, HTTP JSON/4' rps)")** (goal ≥ 3); gRPC raw / JSON: $(ratio "$(field '602 KB tensor, gRPC raw/4' rps)" "$(field '602 KB tensor, HTTP JSON/4' rps)")"
