#![no_main]
//! See `rmlx_fuzz::tokenizer::known_vocabularies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::tokenizer::known_vocabularies(data);
});
