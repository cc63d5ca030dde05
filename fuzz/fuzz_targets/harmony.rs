#![no_main]
//! See `rmlx_fuzz::harmony::run`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::harmony::run(data);
});
