#![no_main]
//! See `rmlx_fuzz::tokenizer::from_json_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::tokenizer::from_json_files(data);
});
