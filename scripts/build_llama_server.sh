#!/usr/bin/env bash
# Builds llama.cpp's CPU `llama-server` and `llama-bench` (the peers of `rmlx serve` and
# `rmlx bench`) from the llama.cpp vendored in PyPI's llama-cpp-python==0.3.36 sdist: only PyPI
# is reachable here, so the sdist is the peer's source (as scripts/gpu/llamacpp_src.sh does for
# the GPU build). Prints the directory holding the two binaries on its last line.
#
# Usage: scripts/build_llama_server.sh [JOBS]          (default 2: this box has 2 cores)
# Env:   LLAMACPP_DIR  where the sources and build go (default ~/.cache/rmlx/llama.cpp-0.3.36-cpu)
#        LLAMACPP_SRC  an extracted vendor/llama.cpp to copy instead of downloading the sdist
set -euo pipefail
jobs=${1:-2}
ver=0.3.36
dir=${LLAMACPP_DIR:-$HOME/.cache/rmlx/llama.cpp-$ver-cpu}
bin="$dir/build/bin"
if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-bench" ]; then
    echo "$bin"
    exit 0
fi

if [ ! -f "$dir/src/CMakeLists.txt" ]; then
    src=${LLAMACPP_SRC:-}
    if [ -z "$src" ]; then
        # pip's own unpack of an earlier download, if one is still around (saves ~30 MB).
        for d in /tmp/pip-download-*/llama-cpp-python_*; do
            if [ -f "$d/PKG-INFO" ] && grep -qx "Version: $ver" "$d/PKG-INFO" &&
                [ -f "$d/vendor/llama.cpp/CMakeLists.txt" ]; then
                src="$d/vendor/llama.cpp"
                break
            fi
        done
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if [ -z "$src" ]; then
        python3 -m pip download --quiet --no-binary :all: --no-deps -d "$work" \
            "llama-cpp-python==$ver"
        tar -xzf "$work"/llama_cpp_python-$ver.tar.gz -C "$work"
        src="$work/llama_cpp_python-$ver/vendor/llama.cpp"
    fi
    mkdir -p "$dir"
    rm -rf "$dir/src.tmp"
    cp -r "$src" "$dir/src.tmp"
    mv "$dir/src.tmp" "$dir/src"
fi

# No web UI (it would be fetched from Hugging Face or built with npm), no HTTPS, no curl:
# the benchmark needs the API only.
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    >"$dir/cmake.log" 2>&1 || { tail -30 "$dir/cmake.log" >&2; exit 1; }
cmake --build "$dir/build" -j "$jobs" --target llama-server llama-bench \
    >"$dir/build.log" 2>&1 || { tail -30 "$dir/build.log" >&2; exit 1; }
echo "$bin"
