#![no_main]
//! See `rmlx_fuzz::io::gguf_parse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::io::gguf_parse(data);
});
