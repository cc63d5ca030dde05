#![no_main]
//! See `rmlx_fuzz::gguf_vocab::run`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::gguf_vocab::run(data);
});
