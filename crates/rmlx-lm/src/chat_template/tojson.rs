//! transformers' `tojson` filter: Python `json.dumps` output, bounded so that a template cannot
//! make it overflow the stack (deeply nested values) or allocate without limit (huge indents).

use super::limits::{invalid, nesting_exceeds, MAX_NESTING, MAX_OUTPUT_BYTES};
use minijinja::value::{Kwargs, Value};
use minijinja::State;
use serde_json::Value as Json;

/// `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, so
/// `", "`/`": "` separators, no HTML escaping, keys in insertion order. The output may use at
/// most `MAX_OUTPUT_BYTES`, and what it uses is charged to the render's fuel.
pub fn tojson(state: &State, value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let max_bytes = MAX_OUTPUT_BYTES;
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    if nesting_exceeds(&value, MAX_NESTING) {
        return Err(invalid(format!(
            "tojson: value nested deeper than {MAX_NESTING} levels"
        )));
    }
    let json = serde_json::to_value(&value).map_err(|e| invalid(format!("tojson: {e}")))?;
    // Python: "," with an indent (the newline follows), ", " without.
    let (item_sep, key_sep) = match separators.as_deref() {
        None => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
        Some([i, k]) => (i.clone(), k.clone()),
        Some(s) => {
            return Err(invalid(format!(
                "tojson: expected 2 separators, found {}",
                s.len()
            )))
        }
    };
    let opts = PyJson {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
        item_sep,
        key_sep,
        max_bytes,
    };
    let mut out = String::new();
    opts.write(&json, 0, &mut out).map_err(|TooLong| {
        invalid(format!(
            "tojson: output exceeds {max_bytes} bytes (indent {indent:?})"
        ))
    })?;
    // The engine charges the returned string's size; this charges the work that built it.
    state.consume_fuel(out.len() as u64 / 64)?;
    Ok(Value::from_safe_string(out))
}

/// The output would pass `max_bytes`.
struct TooLong;

/// Python `json.dumps` formatting.
struct PyJson {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
    max_bytes: usize,
}

impl PyJson {
    /// Appends `s`, or fails without growing `out` past the limit.
    fn push(&self, out: &mut String, s: &str) -> Result<(), TooLong> {
        if out.len().saturating_add(s.len()) > self.max_bytes {
            return Err(TooLong);
        }
        out.push_str(s);
        Ok(())
    }

    fn newline(&self, level: usize, out: &mut String) -> Result<(), TooLong> {
        if let Some(n) = self.indent {
            let width = n.saturating_mul(level);
            if out.len().saturating_add(width).saturating_add(1) > self.max_bytes {
                return Err(TooLong);
            }
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width));
        }
        Ok(())
    }

    fn write(&self, v: &Json, level: usize, out: &mut String) -> Result<(), TooLong> {
        match v {
            Json::Null => self.push(out, "null"),
            Json::Bool(b) => self.push(out, if *b { "true" } else { "false" }),
            Json::Number(n) => self.push(out, &py_number(n)),
            Json::String(s) => self.write_str(s, out),
            Json::Array(a) if a.is_empty() => self.push(out, "[]"),
            Json::Array(a) => {
                self.push(out, "[")?;
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.push(out, &self.item_sep)?;
                    }
                    self.newline(level + 1, out)?;
                    self.write(x, level + 1, out)?;
                }
                self.newline(level, out)?;
                self.push(out, "]")
            }
            Json::Object(m) if m.is_empty() => self.push(out, "{}"),
            Json::Object(m) => {
                let mut entries: Vec<(&String, &Json)> = m.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                self.push(out, "{")?;
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        self.push(out, &self.item_sep)?;
                    }
                    self.newline(level + 1, out)?;
                    self.write_str(k, out)?;
                    self.push(out, &self.key_sep)?;
                    self.write(x, level + 1, out)?;
                }
                self.newline(level, out)?;
                self.push(out, "}")
            }
        }
    }

    fn write_str(&self, s: &str, out: &mut String) -> Result<(), TooLong> {
        self.push(out, "\"")?;
        for c in s.chars() {
            match c {
                '"' => self.push(out, "\\\"")?,
                '\\' => self.push(out, "\\\\")?,
                '\n' => self.push(out, "\\n")?,
                '\r' => self.push(out, "\\r")?,
                '\t' => self.push(out, "\\t")?,
                '\u{8}' => self.push(out, "\\b")?,
                '\u{c}' => self.push(out, "\\f")?,
                c if (c as u32) < 0x20 || (self.ensure_ascii && (c as u32) > 0x7e) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        self.push(out, &format!("\\u{unit:04x}"))?;
                    }
                }
                c => self.push(out, c.encode_utf8(&mut [0u8; 4]))?,
            }
        }
        self.push(out, "\"")
    }
}

/// Python prints floats with `repr`: `1.0`, `0.5`, `1e+16`; integers as they are.
fn py_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                let s = format!("{f:?}");
                // Rust writes 1e16 / 1e-7; Python writes 1e+16 / 1e-07.
                match s.split_once('e') {
                    Some((m, e)) => {
                        let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                        format!("{m}e{sign}{digits:0>2}")
                    }
                    None => s,
                }
            }
        }
        _ => n.to_string(),
    }
}
