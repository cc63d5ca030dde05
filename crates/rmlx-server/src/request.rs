//! Request bodies of `/v1/chat/completions` and `/v1/completions`, checked and turned into the
//! library's `Prompt` and `GenerateOptions`. Unknown fields are ignored (clients send many).

use crate::error::ApiError;
use rmlx_lm::cache::CacheKind;
use rmlx_lm::logprobs::MAX_TOP_LOGPROBS;
use rmlx_lm::{ForcedTools, GenerateOptions, Grammar, Prompt, SamplerConfig};
use serde::Deserialize;
use serde_json::Value as Json;

/// Fields both endpoints share.
#[derive(Deserialize)]
pub struct Common {
    /// Optional, as llama-server and vLLM take it: a request without it goes to the served model.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Any integer (OpenAI clients send i64); its bits seed the sampler.
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub n: Option<u64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// Chat: `true` reports each token's log-probability (`top_logprobs` alternatives too);
    /// completions: the number of alternatives (0 to 20).
    pub logprobs: Option<Json>,
    pub top_logprobs: Option<u64>,
    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema",
    /// "json_schema": {"name", "schema", "strict"}}`: structured output.
    pub response_format: Option<Json>,
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub struct ChatRequest {
    pub messages: Json,
    /// "low", "medium" or "high": passed to the chat template (gpt-oss writes it into the
    /// system message).
    pub reasoning_effort: Option<String>,
    /// `[{"type": "function", "function": {"name", "description", "parameters"}}, …]`: passed
    /// to the chat template; the reply's calls come back as `tool_calls`.
    pub tools: Option<Json>,
    /// "auto" (the default), "none" (tools are not offered), "required" (a call to some
    /// tool) or a named function (a call to it): the last two are enforced with a grammar.
    pub tool_choice: Option<Json>,
    /// With `tool_choice: "required"`: `true` lets the model make several calls; otherwise
    /// (as llama.cpp's default) exactly one. Calls under "auto" are not limited.
    pub parallel_tool_calls: Option<bool>,
    #[serde(flatten)]
    pub common: Common,
}

const EFFORTS: [&str; 3] = ["low", "medium", "high"];

impl ChatRequest {
    /// The checked messages, rendered with `reasoning_effort` and `tools` when given.
    pub fn prompt(&self) -> Result<Prompt, ApiError> {
        let messages = chat_messages(&self.messages)?;
        let mut vars = serde_json::Map::new();
        if let Some(effort) = &self.reasoning_effort {
            if !EFFORTS.contains(&effort.as_str()) {
                return Err(ApiError::invalid(format!(
                    "reasoning_effort: expected one of {EFFORTS:?}, found {effort:?}"
                ))
                .with_param("reasoning_effort"));
            }
            vars.insert("reasoning_effort".into(), Json::from(effort.as_str()));
        }
        if let Some(tools) = self.offered_tools()? {
            vars.insert("tools".into(), tools);
        }
        if vars.is_empty() {
            return Ok(Prompt::Chat(messages));
        }
        Ok(Prompt::ChatWith { messages, vars })
    }

    /// The calls a forcing `tool_choice` allows ("required" or a named function, which must
    /// be one of `tools`), or None ("auto", "none", none given). Call after `offered_tools`.
    pub fn forced_tools(&self) -> Result<Option<ForcedTools>, ApiError> {
        let bad = |m: String| Err(ApiError::invalid(m).with_param("tool_choice"));
        let forced = match &self.tool_choice {
            Some(Json::String(c)) if c == "required" => ForcedTools::Required {
                parallel: self.parallel_tool_calls == Some(true),
            },
            Some(Json::Object(o)) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                ForcedTools::Function(name.to_string())
            }
            _ => return Ok(None),
        };
        let tools = self.tools.as_ref().and_then(Json::as_array);
        let names = || {
            tools
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("function")?.get("name")?.as_str())
        };
        match &forced {
            _ if names().next().is_none() => {
                bad("tool_choice: forcing a tool call needs `tools`, found none".into())
            }
            ForcedTools::Function(n) if !names().any(|t| t == n) => bad(format!(
                "tool_choice: the function {n:?} is not one of the tools ({})",
                names().collect::<Vec<_>>().join(", ")
            )),
            _ => Ok(Some(forced)),
        }
    }

    /// The checked tools to offer the model (None: none given, or `tool_choice: "none"`).
    pub fn offered_tools(&self) -> Result<Option<Json>, ApiError> {
        let bad = |p: &'static str, m: String| ApiError::invalid(m).with_param(p);
        match &self.tool_choice {
            None | Some(Json::Null) => {}
            Some(Json::String(c)) if ["auto", "none", "required"].contains(&c.as_str()) => {}
            Some(c @ Json::Object(o))
                if o.get("type").and_then(Json::as_str) == Some("function")
                    && o.get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Json::as_str)
                        .is_some() => {}
            Some(c) => {
                return Err(bad(
                    "tool_choice",
                    format!(
                        "tool_choice: expected \"auto\", \"none\", \"required\" or \
                         {{\"type\": \"function\", \"function\": {{\"name\": …}}}}, found {c}"
                    ),
                ))
            }
        }
        let tools = match &self.tools {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::Array(t)) => t,
            Some(other) => {
                return Err(bad(
                    "tools",
                    format!("tools: expected an array of tools, found {other}"),
                ))
            }
        };
        for (i, t) in tools.iter().enumerate() {
            let f = t.get("function");
            let ok = t.get("type").and_then(Json::as_str) == Some("function")
                && f.and_then(|f| f.get("name"))
                    .and_then(Json::as_str)
                    .is_some_and(|n| !n.is_empty())
                && f.and_then(|f| f.get("parameters"))
                    .is_none_or(|p| p.is_object() || p.is_null());
            if !ok {
                return Err(bad(
                    "tools",
                    format!(
                        "tools[{i}]: expected {{\"type\": \"function\", \"function\": \
                         {{\"name\": a non-empty string, \"parameters\": a JSON schema object}}}}"
                    ),
                ));
            }
        }
        if tools.is_empty() || self.tool_choice.as_ref().and_then(Json::as_str) == Some("none") {
            return Ok(None);
        }
        Ok(Some(Json::Array(tools.clone())))
    }
}

#[derive(Deserialize)]
pub struct CompletionRequest {
    pub prompt: Json,
    #[serde(flatten)]
    pub common: Common,
}

/// Parses a JSON body into `T`; syntax and type errors are 400s.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON"
        } else {
            "invalid request"
        };
        ApiError::invalid(format!("{what}: {e}"))
    })
}

impl Common {
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The library's options (`chat`: for `/v1/chat/completions`, else `/v1/completions`).
    /// OpenAI's sampling defaults: temperature 1, top_p 1, no top-k or min-p; no `max_tokens`
    /// generates until EOS, a stop string or the end of the context.
    pub fn options(
        &self,
        chat: bool,
        keep_special: bool,
        kv_cache: CacheKind,
    ) -> Result<GenerateOptions, ApiError> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::invalid(format!(
                    "n: only 1 choice per request is supported, found {n}"
                ))
                .with_param("n"));
            }
        }
        let logprobs = self.logprobs(chat)?;
        let temperature = in_range("temperature", self.temperature, 1.0, 0.0, 2.0)?;
        let top_p = in_range("top_p", self.top_p, 1.0, 0.0, 1.0)?;
        if top_p == 0.0 {
            return Err(
                ApiError::invalid("top_p: expected a value in (0, 1], found 0").with_param("top_p"),
            );
        }
        let presence = in_range("presence_penalty", self.presence_penalty, 0.0, -2.0, 2.0)?;
        let frequency = in_range("frequency_penalty", self.frequency_penalty, 0.0, -2.0, 2.0)?;
        let stop = match &self.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(
                ApiError::invalid("max_tokens: expected at least 1, found 0")
                    .with_param("max_tokens"),
            );
        }
        Ok(GenerateOptions {
            max_tokens,
            sampler: SamplerConfig {
                temperature,
                top_k: 0,
                top_p,
                min_p: 0.0,
                repetition_penalty: 1.0,
                presence_penalty: presence,
                frequency_penalty: frequency,
                seed: self.seed.map(|s| s as u64),
                ..SamplerConfig::default()
            },
            stop,
            keep_special,
            kv_cache,
            logprobs,
            // Set by the endpoint, which knows the reply's scope (`grammar` checks the field).
            constraint: None,
        })
    }

    /// The grammar `response_format` asks for (None: free text). The schema is compiled
    /// when the request is submitted; here only its shape is checked. `strict` is accepted
    /// and changes nothing: every schema is enforced (a keyword llguidance cannot enforce is
    /// a 400, never silently ignored).
    pub fn grammar(&self) -> Result<Option<Grammar>, ApiError> {
        let bad = |m: String| Err(ApiError::invalid(m).with_param("response_format"));
        let format = match &self.response_format {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::Object(o)) => o,
            Some(other) => {
                return bad(format!(
                    "response_format: expected an object, found {other}"
                ))
            }
        };
        match format.get("type").and_then(Json::as_str) {
            Some("text") => Ok(None),
            Some("json_object") => Ok(Some(Grammar::JsonObject)),
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .filter(|s| s.is_object() || s.is_boolean());
                match schema {
                    Some(s) => Ok(Some(Grammar::JsonSchema(s.clone()))),
                    None => bad(
                        "response_format.json_schema.schema: expected a JSON schema (an object)"
                            .into(),
                    ),
                }
            }
            _ => bad(format!(
                "response_format.type: expected \"text\", \"json_object\" or \"json_schema\", \
                 found {}",
                format.get("type").unwrap_or(&Json::Null)
            )),
        }
    }

    /// How many alternatives to report with each token's log-probability, or None (off).
    /// Chat: `logprobs: true` with `top_logprobs` 0–20; completions: `logprobs` 0–20.
    fn logprobs(&self, chat: bool) -> Result<Option<usize>, ApiError> {
        let bad = |p: &'static str, m: String| Err(ApiError::invalid(m).with_param(p));
        let count = |n: u64, p: &'static str| match usize::try_from(n) {
            Ok(n) if n <= MAX_TOP_LOGPROBS => Ok(Some(n)),
            _ => bad(
                p,
                format!("{p}: expected 0 to {MAX_TOP_LOGPROBS}, found {n}"),
            ),
        };
        let off = matches!(
            self.logprobs,
            None | Some(Json::Null) | Some(Json::Bool(false))
        );
        match (&self.logprobs, self.top_logprobs) {
            (_, Some(_)) if !chat => bad(
                "top_logprobs",
                "top_logprobs: completions take the number of alternatives in `logprobs`".into(),
            ),
            (_, Some(_)) if off => bad(
                "top_logprobs",
                "top_logprobs: requires `logprobs: true`".into(),
            ),
            _ if off => Ok(None),
            (Some(Json::Bool(true)), top) if chat => count(top.unwrap_or(0), "top_logprobs"),
            (Some(v), _) if chat => bad(
                "logprobs",
                format!("logprobs: expected a boolean, found {v}"),
            ),
            (Some(v), _) => match v.as_u64() {
                Some(n) => count(n, "logprobs"),
                None => bad(
                    "logprobs",
                    format!("logprobs: expected an integer (0 to {MAX_TOP_LOGPROBS}), found {v}"),
                ),
            },
            (None, _) => Ok(None),
        }
    }
}

fn in_range(
    name: &'static str,
    v: Option<f32>,
    default: f32,
    lo: f32,
    hi: f32,
) -> Result<f32, ApiError> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(format!(
            "{name}: expected a value in [{lo}, {hi}], found {v}"
        ))
        .with_param(name))
    }
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Checks chat messages and gives each a plain-text `content` (text parts joined), as chat
/// templates expect.
fn chat_messages(messages: &Json) -> Result<Vec<Json>, ApiError> {
    let bad = |m: String| ApiError::invalid(m).with_param("messages");
    let list = messages
        .as_array()
        .ok_or_else(|| bad("messages: expected an array of messages".into()))?;
    if list.is_empty() {
        return Err(bad(
            "messages: expected at least one message, found none".into()
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let obj = m
            .as_object()
            .ok_or_else(|| bad(format!("messages[{i}]: expected an object")))?;
        match obj.get("role").and_then(Json::as_str) {
            Some(r) if ROLES.contains(&r) => {}
            Some(r) => {
                return Err(bad(format!(
                    "messages[{i}].role: expected one of {ROLES:?}, found {r:?}"
                )))
            }
            None => return Err(bad(format!("messages[{i}].role: expected a string"))),
        }
        let content = match obj.get("content") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(parts)) => text_parts(parts)
                .ok_or_else(|| bad(format!("messages[{i}].content: expected text parts")))?,
            Some(_) => {
                return Err(bad(format!(
                    "messages[{i}].content: expected a string or an array of text parts"
                )))
            }
        };
        let mut m = obj.clone();
        m.insert("content".into(), Json::String(content));
        // Earlier reasoning sent back (`reasoning_content` as this server and vLLM return it,
        // or `reasoning`) is what chat templates read as `thinking` (gpt-oss's keeps it for a
        // turn that called tools).
        if !m.contains_key("thinking") {
            let r = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Json::as_str).map(str::to_string));
            if let Some(r) = r {
                m.insert("thinking".into(), Json::String(r));
            }
        }
        if let Some(calls) = m.get_mut("tool_calls") {
            template_tool_calls(calls)
                .map_err(|e| bad(format!("messages[{i}].tool_calls: {e}")))?;
        }
        out.push(Json::Object(m));
    }
    Ok(out)
}

/// An assistant message's `tool_calls` as chat templates read them: OpenAI sends each call's
/// `function.arguments` as JSON text, templates expect the object (vLLM converts the same way);
/// text that is not JSON stays text.
fn template_tool_calls(calls: &mut Json) -> Result<(), String> {
    let list = calls
        .as_array_mut()
        .ok_or_else(|| "expected an array of calls".to_string())?;
    for (j, c) in list.iter_mut().enumerate() {
        let f = c
            .get_mut("function")
            .and_then(Json::as_object_mut)
            .ok_or_else(|| format!("[{j}]: expected a `function` object"))?;
        if !f.get("name").is_some_and(Json::is_string) {
            return Err(format!("[{j}].function.name: expected a string"));
        }
        if let Some(Json::String(args)) = f.get("arguments") {
            if let Ok(v) = serde_json::from_str::<Json>(args) {
                f.insert("arguments".into(), v);
            }
        }
    }
    Ok(())
}

/// `[{"type": "text", "text": …}, …]` joined; None if a part is not text.
fn text_parts(parts: &[Json]) -> Option<String> {
    let mut s = String::new();
    for p in parts {
        if p.get("type")?.as_str()? != "text" {
            return None;
        }
        s.push_str(p.get("text")?.as_str()?);
    }
    Some(s)
}

/// A completion prompt: a string, or an array holding one string.
pub fn text_prompt(prompt: &Json) -> Result<Prompt, ApiError> {
    let text = match prompt {
        Json::String(s) => Some(s.clone()),
        Json::Array(v) if v.len() == 1 => v[0].as_str().map(str::to_string),
        _ => None,
    };
    match text {
        Some(t) if !t.is_empty() => Ok(Prompt::Text(t)),
        Some(_) => {
            Err(ApiError::invalid("prompt: expected a non-empty string").with_param("prompt"))
        }
        None => Err(
            ApiError::invalid("prompt: expected a string (or an array of one string)")
                .with_param("prompt"),
        ),
    }
}
