//! Builders for (possibly malformed) safetensors and GGUF bytes.
#![allow(dead_code)]

use std::path::Path;

/// A safetensors file from a raw JSON header and data bytes.
pub fn st_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A valid safetensors file of the given (name, dtype, shape, bytes) tensors.
pub fn st_file(tensors: &[(&str, &str, &[usize], &[u8])], config_meta: Option<&str>) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    if let Some(m) = config_meta {
        entries.push(format!("\"__metadata__\":{m}"));
    }
    for (name, dtype, shape, bytes) in tensors {
        let b = data.len();
        data.extend_from_slice(bytes);
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{b},{}]}}",
            data.len()
        ));
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    st_bytes(&header, &data)
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write test file");
}

/// GGUF writer with knobs for breaking things.
pub struct Gguf {
    pub version: u32,
    pub kv: Vec<u8>,
    pub n_kv: u64,
    pub infos: Vec<u8>,
    pub n_tensors: u64,
    pub data: Vec<u8>,
    pub alignment: usize,
}

pub fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Default for Gguf {
    fn default() -> Self {
        Gguf {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
            alignment: 32,
        }
    }
}

impl Gguf {
    /// A key with a raw value encoding (type id followed by `value`).
    pub fn kv_raw(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        gstr(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }
    pub fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv_raw(key, 6, &v.to_le_bytes())
    }
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        gstr(&mut b, v);
        self.kv_raw(key, 8, &b)
    }
    pub fn kv_str_array(&mut self, key: &str, items: &[&str]) -> &mut Self {
        let mut b = 8u32.to_le_bytes().to_vec();
        b.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for s in items {
            gstr(&mut b, s);
        }
        self.kv_raw(key, 9, &b)
    }
    /// A tensor info with an explicit offset; `data` is appended at `offset` if given.
    pub fn tensor_at(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        gstr(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend_from_slice(&d.to_le_bytes());
        }
        self.infos.extend_from_slice(&ty.to_le_bytes());
        self.infos.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    /// A tensor whose bytes are appended to the data section at the next aligned offset.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        let off = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.tensor_at(name, dims, ty, off)
    }
    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
