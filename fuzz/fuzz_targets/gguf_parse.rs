#![no_main]
//! Arbitrary bytes as a whole GGUF file: header parse, validation and tensor views.

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = rmlx_io::GgufFile::from_bytes("fuzz", Arc::new(data.to_vec())) {
        let _ = f.tensor_infos();
        for t in f.tensors() {
            let _ = f.get(&t.name);
            let _ = f.get_quantized(&t.name);
        }
    }
});
