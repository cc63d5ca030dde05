#![no_main]
//! Arbitrary bytes as a whole safetensors file: header parse, validation and tensor views.

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = rmlx_io::SafetensorsFile::from_bytes("fuzz", Arc::new(data.to_vec())) {
        for t in f.tensors() {
            let _ = f.get(&t.name);
        }
    }
});
