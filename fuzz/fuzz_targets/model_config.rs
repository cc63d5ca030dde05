#![no_main]
//! See `rmlx_fuzz::model_config::run`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rmlx_fuzz::model_config::run(data);
});
