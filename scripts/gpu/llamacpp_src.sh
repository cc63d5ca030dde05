#!/usr/bin/env bash
# Packs the llama.cpp sources of PyPI's llama-cpp-python==0.3.36 sdist, trimmed to what a CUDA
# llama-bench needs, into .gpu/llama.cpp.tar.xz (carried to the GPU machine, built there by
# scripts/gpu/build_llamacpp.sh). Only PyPI is reachable, so the sdist is the peer's source.
set -euo pipefail
cd "$(dirname "$0")/../.."
ver=0.3.36
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url=$(curl -fsS https://pypi.org/simple/llama-cpp-python/ |
    grep -o "https://[^\"#]*llama_cpp_python-$ver.tar.gz" | head -1)
curl -fsS -o "$work/sdist.tar.gz" "$url"
tar -xzf "$work/sdist.tar.gz" -C "$work"
src="$work/llama_cpp_python-$ver/vendor/llama.cpp"
dst="$work/llama.cpp"
mkdir -p "$dst/ggml/src" "$dst/tools"
cp -r "$src"/{CMakeLists.txt,cmake,common,include,src,vendor,licenses,LICENSE} "$dst/"
cp -r "$src"/ggml/{CMakeLists.txt,cmake,include} "$dst/ggml/"
cp "$src"/ggml/src/*.* "$dst/ggml/src/"
cp -r "$src"/ggml/src/{ggml-cpu,ggml-cuda} "$dst/ggml/src/"
cp -r "$src"/tools/llama-bench "$dst/tools/"
printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n' \
    >"$dst/tools/CMakeLists.txt"
mkdir -p .gpu
tar -C "$work" -cJf .gpu/llama.cpp.tar.xz llama.cpp
ls -la .gpu/llama.cpp.tar.xz
