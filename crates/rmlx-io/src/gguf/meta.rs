//! GGUF metadata values and typed getters (the tokenizer reads `tokenizer.ggml.*` through these).

use super::reader::Reader;
use rmlx_core::{Error, Result};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
}

/// Nested arrays deeper than this are rejected (no real file nests at all; unbounded recursion
/// on crafted input would overflow the stack).
const MAX_DEPTH: usize = 8;

/// Smallest encoding of one value of GGUF type `ty`, used to bound array counts.
fn min_size(ty: u32) -> usize {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,  // string: u64 length
        9 => 12, // array: u32 type + u64 count
        _ => 1,
    }
}

impl MetaValue {
    pub(crate) fn read(r: &mut Reader, ty: u32, key: &str, depth: usize) -> Result<MetaValue> {
        let what = format_args!("value of '{key}'");
        Ok(match ty {
            0 => MetaValue::U8(r.u8(&what)?),
            1 => MetaValue::I8(r.u8(&what)? as i8),
            2 => MetaValue::U16(r.u16(&what)?),
            3 => MetaValue::I16(r.u16(&what)? as i16),
            4 => MetaValue::U32(r.u32(&what)?),
            5 => MetaValue::I32(r.u32(&what)? as i32),
            6 => MetaValue::F32(f32::from_bits(r.u32(&what)?)),
            7 => match r.u8(&what)? {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => {
                    return Err(Error::format(format!(
                        "gguf: key '{key}': expected a bool (0 or 1), found {b}"
                    )))
                }
            },
            8 => MetaValue::String(String::from_utf8_lossy(r.string(&what)?).into_owned()),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(Error::format(format!(
                        "gguf: key '{key}': arrays nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                let elem = r.u32(&format_args!("array type of '{key}'"))?;
                let n = r.count(min_size(elem), &format_args!("array '{key}'"))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(MetaValue::read(r, elem, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(r.u64(&what)?),
            11 => MetaValue::I64(r.u64(&what)? as i64),
            12 => MetaValue::F64(f64::from_bits(r.u64(&what)?)),
            other => {
                return Err(Error::format(format!(
                    "gguf: key '{key}': expected a value type 0..=12, found {other}"
                )))
            }
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F32(_) => "f32",
            MetaValue::F64(_) => "f64",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }

    /// Any integer type, as i128 so every GGUF integer fits; writers disagree on widths
    /// (u32 vs u64 for lengths), so getters accept any integer that fits the asked type.
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v as i128,
            MetaValue::I8(v) => v as i128,
            MetaValue::U16(v) => v as i128,
            MetaValue::I16(v) => v as i128,
            MetaValue::U32(v) => v as i128,
            MetaValue::I32(v) => v as i128,
            MetaValue::U64(v) => v as i128,
            MetaValue::I64(v) => v as i128,
            _ => return None,
        })
    }

    /// Floats, and integers converted to floats.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_int().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// JSON form; arrays longer than `max_array` become `"[<type>; N items]"`.
    pub fn to_json(&self, max_array: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            MetaValue::Bool(b) => Value::Bool(*b),
            MetaValue::String(s) => Value::String(s.clone()),
            // Through f32's shortest decimal form, so 1e-5f32 shows as 1e-5, not 9.99999974e-6.
            MetaValue::F32(v) => {
                serde_json::Number::from_f64(v.to_string().parse().unwrap_or(*v as f64))
                    .map_or(Value::Null, Value::Number)
            }
            MetaValue::F64(v) => {
                serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number)
            }
            MetaValue::Array(a) if a.len() > max_array => {
                let elem = a.first().map_or("empty", |v| v.type_name());
                Value::String(format!("[{elem}; {} items]", a.len()))
            }
            MetaValue::Array(a) => Value::Array(a.iter().map(|v| v.to_json(max_array)).collect()),
            _ => match self.as_int() {
                Some(v) if v >= 0 => Value::from(v as u64),
                Some(v) => Value::from(v as i64),
                None => Value::Null,
            },
        }
    }
}

/// Metadata key/value pairs in file order, with lookup by key.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, MetaValue)>,
    index: HashMap<String, usize>,
}

fn wrong(key: &str, expected: &str, v: &MetaValue) -> Error {
    Error::format(format!(
        "gguf metadata: key '{key}': expected {expected}, found {}",
        v.type_name()
    ))
}

impl Metadata {
    /// Adds a pair; false if the key was already present.
    pub(crate) fn insert(&mut self, key: String, value: MetaValue) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// The value, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&MetaValue> {
        self.get(key)
            .ok_or_else(|| Error::format(format!("gguf metadata: missing key '{key}'")))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, "a string", v))
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, name: &str) -> Result<T> {
        let v = self.require(key)?;
        let i = v.as_int().ok_or_else(|| wrong(key, name, v))?;
        T::try_from(i).map_err(|_| {
            Error::format(format!(
                "gguf metadata: key '{key}': expected {name}, found {i} (out of range)"
            ))
        })
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "a u32")
    }
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "a u64")
    }
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_int(key, "an i32")
    }
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "an i64")
    }
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_int(key, "a usize")
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong(key, "a number", v))
    }
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_f64(key).map(|v| v as f32)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => Err(wrong(key, "a bool", v)),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&[MetaValue]> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| wrong(key, "an array", v))
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get_array(key)?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| wrong(key, "an array of strings", v))
            })
            .collect()
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get_array(key)?
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| wrong(key, "an array of numbers", v))
            })
            .collect()
    }

    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.get_array(key)?
            .iter()
            .map(|v| {
                v.as_int()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| wrong(key, "an array of i32", v))
            })
            .collect()
    }
}
