#!/usr/bin/env bash
# Runs the unsafe-heavy tests under checkers that catch what review misses
# (docs/SAFETY.md records what ran and what it found).
#
#   scripts/sanitizers.sh asan   # AddressSanitizer, real SIMD paths (AVX-512 / AVX2 / scalar)
#   scripts/sanitizers.sh miri   # Miri, the portable (non-SIMD) paths and the spin pool
#   scripts/sanitizers.sh        # both
#
# Needs the nightly toolchain with rust-src and miri:
#   rustup toolchain install nightly
#   rustup component add --toolchain nightly rust-src miri
# Each checker builds into its own target dir (target/asan, target/miri), so the ordinary
# release artifacts are left alone. Without the CUDA feature: the GPU code is FFI, which
# neither checker can follow.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
JOBS="${JOBS:-2}"

asan() {
    # -Zbuild-std instruments std as well (its collections hold our buffers); the release
    # profile keeps the kernels fast enough to test, debug assertions stay on for checks.
    export RUSTFLAGS="-Zsanitizer=address -Cdebug-assertions=on"
    export RUSTDOCFLAGS="$RUSTFLAGS"
    export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1"
    local args=(+nightly test -Zbuild-std --target "$TARGET" --release -j "$JOBS"
        --target-dir target/asan -p rmlx-core --no-default-features)
    # Unit tests: SIMD dot/axpy (AVX-512 and, called directly, AVX2), the spin pool, the
    # packed-KV attention (AVX2 vs portable), the fused and AVX2 quantized kernels.
    cargo "${args[@]}" --lib
    # Public ops end to end: quantized matmul (every GGUF kind, MXFP4, affine), the
    # KV-quant attention, matmul/GEMV, indexing and shape ops, the buffer cache, and the
    # public API with bad arguments (huge shapes, out-of-range indices).
    cargo "${args[@]}" --test quantized_matmul --test kv_quant --test ops --test buffer_cache \
        --test quant_dequant --test bad_arguments
    # The same quantized paths with the AVX2 kernels (what CPUs without AVX-512 run), then
    # with the SIMD kernels off (the portable decoders and dots).
    RMLX_QUANT_NO_AVX512=1 cargo "${args[@]}" --test quantized_matmul
    RMLX_QUANT_SCALAR=1 cargo "${args[@]}" --test quantized_matmul
    # Parsers of untrusted files.
    cargo +nightly test -Zbuild-std --target "$TARGET" --release -j "$JOBS" \
        --target-dir target/asan -p rmlx-io \
        --test gguf_bad --test safetensors_bad --test fuzz_corpus
}

miri() {
    # Miri interprets the code (no SIMD features are detected under it, so the portable
    # paths run) and checks every access, alignment and aliasing rule, and data races, over
    # 2 thread schedules. Tree Borrows: rayon's crossbeam-epoch breaks the (stricter,
    # experimental) Stacked Borrows rules and is only Tree-Borrows clean (crossbeam PR #996).
    # Ignore leaks: the spin pool's helpers and rayon's workers live as long as the process,
    # so they are still running (and own their stacks) when the test's main thread exits.
    export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation -Zmiri-tree-borrows -Zmiri-ignore-leaks -Zmiri-many-seeds=0..2}"
    local args=(+nightly miri test --target-dir target/miri -p rmlx-core --no-default-features)
    # The spin pool (threads, atomics, a raw pointer to the job), SIMD dispatch (portable
    # fallbacks), the packed-KV attention's portable lanes, the buffer's raw slices.
    cargo "${args[@]}" --lib -- spin:: simd:: kv_attend:: dtype:: shape::
    cargo "${args[@]}" --test buffer_cache
    # The quantized block readers and decoders (read_unaligned over file bytes).
    cargo "${args[@]}" --test quant_dequant
}

case "${1:-all}" in
asan) asan ;;
miri) miri ;;
all)
    asan
    miri
    ;;
*)
    echo "usage: $0 [asan|miri|all]" >&2
    exit 2
    ;;
esac
