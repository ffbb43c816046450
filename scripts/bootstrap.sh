#!/usr/bin/env bash
# Sourced by scripts/setup and scripts/test (it sets $root and $build_dir): installs what is missing on a
# Debian 12 machine (apt packages, the ONNX Runtime prefix) and builds braid
# with CMake. Idempotent: a second run only rebuilds what changed.
#
#   BRAID_BUILD_DIR   build folder (default: build)
#   BRAID_PRESET      CMake configure preset (default: release; also debug, asan)
preset="${BRAID_PRESET:-release}"
build_dir="${BRAID_BUILD_DIR:-$root/build}"
if [[ "$preset" != release && -z "${BRAID_BUILD_DIR:-}" ]]; then build_dir="$root/build-$preset"; fi

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libonnx-dev libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev rapidjson-dev libxxhash-dev
  libboost-dev libgrpc++-dev protobuf-compiler-grpc zlib1g-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libsndfile1-dev libsoxr-dev libfftw3-dev
  libtesseract-dev tesseract-ocr-eng libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
  flite imagemagick fonts-dejavu-core fonts-dejavu-extra python3
  libgtest-dev libgmock-dev libbenchmark-dev
  libhiredis-dev redis-server redis-tools gnuplot-nox haproxy
  curl prometheus chromium ccache flite1-dev libmp3lame-dev libeigen3-dev
  libfaiss-dev libopenblas-dev libjemalloc-dev wordnet-base libicu-dev
  libnghttp2-dev nghttp2-client libssl-dev openssl wrk libtorch-dev
)
command -v npm >/dev/null || apt_packages+=(npm)

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  step "installing apt packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  step "apt packages: all present"
fi

step "ONNX Runtime prefix"
ort_prefix="${ONNXRUNTIME_ROOT:-$root/.deps/onnxruntime}"
if [[ -z "${ONNXRUNTIME_ROOT:-}" ]]; then
  "$root/scripts/install-onnxruntime.sh" "$ort_prefix"
else
  echo "onnxruntime: using ONNXRUNTIME_ROOT=$ONNXRUNTIME_ROOT"
fi

step "Silero VAD (live streams' voice activity model)"
"$root/scripts/install-silero-vad.sh" "$root/.deps/silero-vad"

step "npm packages for the end-to-end tests' real clients"
if [[ ! -f "$root/node_modules/.package-lock.json" || "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]]; then
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm: node_modules is up to date"
fi

# One compiler cache for every clone of the project on this machine.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"

step "configuring ($preset) in $build_dir"
cmake -S "$root" -B "$build_dir" --preset "$preset" -DONNXRUNTIME_ROOT="$ort_prefix" >/dev/null
step "building (this writes the bundled ONNX models too)"
cmake --build "$build_dir" -j"$(nproc)"
