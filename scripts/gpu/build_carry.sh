#!/usr/bin/env bash
# Builds the test binaries (and the rmlx CLI) in release mode, strips them and copies them into
# .gpu/bin.tar.xz (ignored by git), to carry to the GPU machine, which has no Rust toolchain.
# Carry: .gpu/bin.tar.xz .gpu/layouts .gpu/tools .whl
# Usage: scripts/gpu/build_carry.sh [cargo test selectors...]   (default: the whole workspace)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu
rm -rf "$out/bin" && mkdir -p "$out/bin"
sel=("$@"); [ ${#sel[@]} -eq 0 ] && sel=(--workspace)
cargo test --release --no-run --message-format=json "${sel[@]}" 2>/dev/null \
  | python3 -c '
import json, sys, os, shutil
for line in sys.stdin:
    try: m = json.loads(line)
    except Exception: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"]
        # unit tests of a lib get the crate name; integration tests their file name
        kind = "lib" if m["target"]["kind"] == ["lib"] else ""
        dst = os.path.join(sys.argv[1], "bin", (name + "-" + kind if kind else name))
        shutil.copy(m["executable"], dst); print(dst)
' "$out"
cargo build --release -p rmlx-cli
cp target/release/rmlx "$out/bin/rmlx"
# The GPU benchmark (a harness-less bench target, not a test) travels as bench-gpu_encode.
cargo build --release -p rmlx-core --bench gpu_encode --bench compile_fusion --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, os, shutil
for line in sys.stdin:
    try: m = json.loads(line)
    except Exception: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["bench"]:
        dst = os.path.join(sys.argv[1], "bin", "bench-" + m["target"]["name"])
        shutil.copy(m["executable"], dst); print(dst)
' "$out"
strip "$out"/bin/*
# Binaries that only need the CPU, or a model file that cannot travel, stay home.
(cd "$out/bin" && rm -f buffer_cache chat_template_render common cuda_nvrtc bad_arguments \
  smollm2_llamacpp tokenizer_* quant_dequant quantized_matmul)
# Stripped binaries compress ~4x: the carry limit is 64 MiB with the working tree.
tar -C "$out" -cJf "$out/bin.tar.xz" bin
ls -la "$out/bin.tar.xz"
