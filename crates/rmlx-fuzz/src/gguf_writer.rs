//! A GGUF v3 writer for the harnesses: metadata of any type and tensors, so structured fuzz
//! input (a vocabulary, metadata edits of a real model) becomes a file the real parser reads.

use rmlx_io::MetaValue;

fn type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The value's bytes (no type id). An array takes its first element's type for all; callers
/// keep arrays uniform.
fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::String(x) => put_str(out, x),
        MetaValue::Array(items) => {
            out.extend(items.first().map_or(0, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    kv_count: u64,
    /// (name, dims innermost first, GGML type id, data)
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl GgufWriter {
    pub fn kv(&mut self, key: &str, value: &MetaValue) {
        self.kv_count += 1;
        put_str(&mut self.kv, key);
        self.kv.extend(type_id(value).to_le_bytes());
        put_value(&mut self.kv, value);
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, data: &[u8]) {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ggml_type, data.to_vec()));
    }

    /// The file, tensor data aligned to `alignment` (what `general.alignment` says, else 32).
    pub fn bytes(&self, alignment: u64) -> Vec<u8> {
        let align = |n: u64| n.div_ceil(alignment) * alignment;
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.kv_count.to_le_bytes());
        out.extend(&self.kv);
        let mut offset = 0u64;
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = align(offset + data.len() as u64);
        }
        out.resize(align(out.len() as u64) as usize, 0);
        for (_, _, _, data) in &self.tensors {
            out.extend(data);
            out.resize(align(out.len() as u64) as usize, 0);
        }
        out
    }
}
