#!/usr/bin/env bash
# bench/workflows/protocols.sh: what the protocol costs a workflow run, side
# by side in one run against one `braid serve`: multimodal-assist with a
# text question (its text path: tokens, clip-text, a template; node results
# cached after the first run, so what is measured is the serving around
# the DAG) run through KServe's infer (JSON tensors) and through the
# Dify-style run API (blocking), with wrk at concurrency 1 and 16,
# alternating the two in each of ROUNDS rounds. Prints p50 and throughput
# of each, and KServe's over the run API's.
#   bench/workflows/protocols.sh [SECONDS [ROUNDS]]   (default 3 s, 3 rounds)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
needs wrk
seconds="${1:-3}"
rounds="${2:-3}"

start serve "$build/braid" serve --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
url="http://$(address serve http)"
question="what is in this picture?"
printf '{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["%s"]}]}' \
  "$question" >"$work/kserve.json"
printf '{"inputs":{"text":"%s"},"response_mode":"blocking","user":"bench"}' \
  "$question" >"$work/run.json"
for body in kserve run; do
  path=/v2/models/multimodal-assist/infer
  [[ $body == run ]] && path=/v1/workflows/multimodal-assist/run
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url$path" -H 'Content-Type: application/json' \
    --data-binary @"$work/$body.json")
  [[ $code == 200 ]] || { echo "$path answered $code" >&2; exit 1; }
done

printf 'multimodal-assist, text only: KServe infer vs the run API (blocking), %s s per level\n' \
  "$seconds"
printf '%-6s %-4s %12s %12s %12s %12s %9s %9s\n' round c "kserve p50" "run p50" \
  "kserve rps" "run rps" "p50 x" "rps x"
for round in $(seq "$rounds"); do
  for concurrency in 1 16; do
    read -r kp50 krps kbad < <(wrk_measure "$url/v2/models/multimodal-assist/infer" \
      "$concurrency" "$seconds" "$work/kserve.json")
    read -r rp50 rrps rbad < <(wrk_measure "$url/v1/workflows/multimodal-assist/run" \
      "$concurrency" "$seconds" "$work/run.json")
    if [[ $kbad != 0 || $rbad != 0 ]]; then
      echo "non-2xx answers: kserve $kbad, run $rbad" >&2
      exit 1
    fi
    printf '%-6s %-4s %10s µs %10s µs %12s %12s %9s %9s\n' "$round" "$concurrency" "$kp50" \
      "$rp50" "$krps" "$rrps" "$(ratio "$kp50" "$rp50")" "$(ratio "$krps" "$rrps")"
  done
done
