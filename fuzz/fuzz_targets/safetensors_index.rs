#![no_main]
//! See `rmlx_fuzz::io::safetensors_index`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::io::safetensors_index(data);
});
