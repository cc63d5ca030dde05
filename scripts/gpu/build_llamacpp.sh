#!/usr/bin/env bash
# On the GPU machine: builds llama.cpp's CUDA llama-bench (the peer) from .gpu/llama.cpp.tar.xz
# (made by scripts/gpu/llamacpp_src.sh) into /tmp/lc/llama.cpp/build/bin/llama-bench.
# Usage: build_llamacpp.sh [JOBS]   (CUDA_ARCH defaults to 90: the H100/H200)
set -euo pipefail
jobs=${1:-14}
mkdir -p /tmp/lc
[ -d /tmp/lc/llama.cpp ] || tar -C /tmp/lc -xJf .gpu/llama.cpp.tar.xz
cd /tmp/lc/llama.cpp
export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
cmake -G Ninja -B build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >/tmp/lc/cmake.log 2>&1
ninja -C build -j "$jobs" llama-bench >/tmp/lc/build.log 2>&1
ls -la build/bin/llama-bench
