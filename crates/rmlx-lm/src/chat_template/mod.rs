//! Hugging Face chat templates rendered with minijinja, set up like transformers' jinja2
//! environment: `trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`,
//! `strftime_now`, a `tojson` with Python `json.dumps` output, and Python string/dict methods.
//!
//! Templates come with downloaded models, so their source is checked before it is compiled
//! (`source_check.rs`: size, operators per block) and every render runs within limits
//! (`limits.rs`: fuel, recursion, output size, stack).

mod limits;
mod source_check;
mod tojson;

pub use limits::{FUEL, MAX_NESTING, MAX_OUTPUT_BYTES, RECURSION_LIMIT};
pub use source_check::{MAX_BLOCK_OPERATORS, MAX_TEMPLATE_BYTES};

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use rmlx_core::{Error, Result};
use serde_json::{Map, Value as Json};

use crate::tokenizer::Tokenizer;

const NAME: &str = "chat_template";

pub struct ChatTemplate {
    env: Environment<'static>,
    /// The template's text (what tool-call format it writes: `tool_calls::ToolFormat::detect`).
    source: String,
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
        source_check::check(source)?;
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(tmpl_err)?;
        env.set_syntax(syntax);
        limits::apply(&mut env);
        env.set_unknown_method_callback(python_methods);
        env.add_filter("tojson", tojson::tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_string())
            .map_err(tmpl_err)?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
        })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
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
        limits::render(&self.env, NAME, &ctx, tmpl_err)
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

#[cfg(test)]
mod limit_tests;

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
