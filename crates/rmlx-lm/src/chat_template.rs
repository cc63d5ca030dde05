//! Hugging Face chat templates rendered with minijinja, set up like transformers' jinja2
//! environment: `trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`,
//! `strftime_now`, a `tojson` with Python `json.dumps` output, and Python string/dict methods.

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, ErrorKind};
use rmlx_core::{Error, Result};
use serde_json::{Map, Value as Json};

use crate::tokenizer::Tokenizer;

const NAME: &str = "chat_template";

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .finish()
    }
}

fn tmpl_err(e: minijinja::Error) -> Error {
    // `{:#}` adds the template line and a source excerpt.
    Error::format(format!("chat template: {e:#}"))
}

impl ChatTemplate {
    /// Compile `source`; `bos_token`/`eos_token` are what the template sees by those names.
    pub fn new(source: &str, bos_token: Option<&str>, eos_token: Option<&str>) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(tmpl_err)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(python_methods);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_string())
            .map_err(tmpl_err)?;
        Ok(Self {
            env,
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
        })
    }

    /// The template stored with the tokenizer (GGUF `tokenizer.chat_template` or HF config).
    pub fn from_tokenizer(tk: &Tokenizer) -> Result<Self> {
        let src = tk
            .chat_template()
            .ok_or_else(|| Error::format("chat template: expected one in the model, found none"))?;
        Self::new(src, tk.bos_token().as_deref(), tk.eos_token().as_deref())
    }

    /// Render `messages` (objects with `role`, `content`, and any other fields such as
    /// `tool_calls` or `thinking`, passed through as they are).
    pub fn render(&self, messages: &[Json], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &Map::new())
    }

    /// Like `render`, with extra template variables (`tools`, `reasoning_effort`, …); they
    /// override `bos_token`/`eos_token` too.
    pub fn render_with(
        &self,
        messages: &[Json],
        add_generation_prompt: bool,
        extra: &Map<String, Json>,
    ) -> Result<String> {
        let mut ctx = Map::new();
        ctx.insert("bos_token".into(), Json::from(self.bos_token.clone()));
        ctx.insert("eos_token".into(), Json::from(self.eos_token.clone()));
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), Json::from(messages.to_vec()));
        ctx.insert(
            "add_generation_prompt".into(),
            Json::from(add_generation_prompt),
        );
        let t = self.env.get_template(NAME).map_err(tmpl_err)?;
        t.render(Value::from(Serde(&ctx))).map_err(tmpl_err)
    }
}

/// Python `str`/`dict` methods (`.strip()`, `.items()`, …) from minijinja-contrib, except
/// `str.title()`, where Python starts a word after any non-letter ("a_b" -> "A_B").
fn python_methods(
    state: &mut minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> std::result::Result<Value, minijinja::Error> {
    match (value.as_str(), method, args) {
        (Some(s), "title", []) => {
            let mut out = String::with_capacity(s.len());
            let mut prev_letter = false;
            for c in s.chars() {
                if prev_letter {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                prev_letter = c.is_alphabetic();
            }
            Ok(Value::from(out))
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// Local time formatted with a C `strftime` pattern; a bad pattern is an error, not a panic.
fn strftime_now(fmt: String) -> std::result::Result<String, minijinja::Error> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item> = StrftimeItems::new(&fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        let msg = format!("strftime_now: invalid format '{fmt}'");
        return Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg));
    }
    Ok(chrono::Local::now()
        .format_with_items(items.into_iter())
        .to_string())
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`, so `", "`/`": "` separators, no HTML escaping, keys in insertion order.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let invalid = |m: String| minijinja::Error::new(ErrorKind::InvalidOperation, m);
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
    };
    let mut out = String::new();
    opts.write(&json, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

/// Python `json.dumps` formatting.
struct PyJson {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
}

impl PyJson {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    }

    fn write(&self, v: &Json, level: usize, out: &mut String) {
        match v {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&py_number(n)),
            Json::String(s) => self.write_str(s, out),
            Json::Array(a) if a.is_empty() => out.push_str("[]"),
            Json::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.write(x, level + 1, out);
                }
                self.newline(level, out);
                out.push(']');
            }
            Json::Object(m) if m.is_empty() => out.push_str("{}"),
            Json::Object(m) => {
                let mut entries: Vec<(&String, &Json)> = m.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.write_str(k, out);
                    out.push_str(&self.key_sep);
                    self.write(x, level + 1, out);
                }
                self.newline(level, out);
                out.push('}');
            }
        }
    }

    fn write_str(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && (c as u32) > 0x7e) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, msgs: Json) -> Result<String> {
        let t = ChatTemplate::new(src, Some("<s>"), Some("</s>"))?;
        t.render(msgs.as_array().unwrap(), true)
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let src = "{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'é<' | tojson(ensure_ascii=true) }}\
                   |{{ {'k': [1, 2]} | tojson(separators=[',', ':']) }}{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        let mut extra = Map::new();
        extra.insert(
            "x".into(),
            json!({"b": [1, 2.5, 3.0], "a": {"s": "q\"<é>\n"}, "e": []}),
        );
        let out = t.render_with(&[], false, &extra).unwrap();
        let compact = r#"{"b": [1, 2.5, 3.0], "a": {"s": "q\"<é>\n"}, "e": []}"#;
        let indented = "{\n  \"b\": [\n    1,\n    2.5,\n    3.0\n  ],\n  \"a\": {\n    \"s\": \"q\\\"<é>\\n\"\n  },\n  \"e\": []\n}";
        let rest = r#"|{"k":[1,2]}{"a": 2, "b": 1}"#;
        assert_eq!(out, format!("{compact}|{indented}|\"\\u00e9<\"{rest}"));
    }

    #[test]
    fn helpers_and_python_methods() {
        let src = "{{ bos_token }}{% for m in messages %}{% if loop.index0 == 1 %}{% break %}{% endif %}\
                   {{ m.content.strip().title() }}|{{ m.content.split(',')[1] }}|{{ m.content.startswith(' a') }}\
                   {% endfor %}{{ strftime_now('%Y') | length }}";
        let out = render(
            src,
            json!([{"role": "user", "content": " ab cd,ef "}, {"role": "x"}]),
        )
        .unwrap();
        assert_eq!(out, "<s>Ab Cd,Ef|ef |True4");
    }

    #[test]
    fn errors_are_results() {
        let e = render("{{ raise_exception('bad role') }}", json!([])).unwrap_err();
        assert!(e.to_string().contains("bad role"), "{e}");
        assert!(ChatTemplate::new("{% for %}", None, None).is_err());
        assert!(render("{{ strftime_now('%Q') }}", json!([])).is_err());
    }
}
