#![no_main]
//! See `rmlx_fuzz::io::safetensors_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::io::safetensors_header(data);
});
