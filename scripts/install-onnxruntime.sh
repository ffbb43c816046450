#!/usr/bin/env bash
# Assembles an ONNX Runtime 1.21.0 prefix (include/ + lib/) under $1 without
# touching the system: the shared library comes from the npm package
# onnxruntime-node (a manylinux CPU build), the C/C++ headers from Debian 13's
# libonnxruntime-dev of the same version, fetched with a private apt sources
# list and lists directory so the machine's own sources stay Debian 12.
set -euo pipefail

prefix="${1:?usage: install-onnxruntime.sh PREFIX}"
version=1.21.0
deb_version=1.21.0+dfsg-1

if [[ -f "$prefix/lib/libonnxruntime.so.$version" && -f "$prefix/include/onnxruntime_cxx_api.h" ]]; then
  echo "onnxruntime: $version already at $prefix"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$prefix/lib" "$prefix/include"

echo "onnxruntime: fetching onnxruntime-node@$version from npm"
(cd "$work" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$work"/onnxruntime-node-$version.tgz -C "$work"
cp "$work/package/bin/napi-v3/linux/x64/libonnxruntime.so.$version" "$prefix/lib/"
ln -sf "libonnxruntime.so.$version" "$prefix/lib/libonnxruntime.so.1"
ln -sf "libonnxruntime.so.1" "$prefix/lib/libonnxruntime.so"

echo "onnxruntime: fetching libonnxruntime-dev $deb_version headers from Debian 13"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n' \
  > "$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o "Dir::State::status=/dev/null" -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" -q update >/dev/null
(cd "$work" && apt-get "${apt_opts[@]}" -q download "libonnxruntime-dev=$deb_version" >/dev/null)
dpkg-deb -x "$work"/libonnxruntime-dev_*.deb "$work/deb"
header_dir="$(dirname "$(find "$work/deb" -name onnxruntime_cxx_api.h | head -n1)")"
cp -r "$header_dir"/. "$prefix/include/"
echo "onnxruntime: ready at $prefix"
