#![no_main]
//! See `rmlx_fuzz::chat_template::run`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::chat_template::run(data);
});
