//! Forced tool calls (`tool_choice: "required"` or a named function): a Lark grammar whose
//! only sentences are calls in the format the model writes them (`ToolFormat`), with each
//! call's arguments matching its tool's `parameters` schema (llguidance's `%json`). vLLM and
//! llama.cpp enforce these choices the same way, with a grammar.
//!
//! - Hermes/Qwen: `<tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>`, several
//!   joined by `\n` when parallel calls are allowed.
//! - Llama 3.x: `{"name": "NAME", "parameters": ARGS}`, several joined by `; `.
//! - Harmony (gpt-oss): an optional `analysis` message (free reasoning), then
//!   `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>ARGS`. One call: a
//!   harmony turn ends at its call.
//!
//! The reply is the call from its first token (no text before it); the grammar ends after the
//! call, and the sequence with it (a harmony call needs no `<|call|>`: the reply parser reads
//! an unterminated last message).

use super::{err, ConstraintSpec, Grammar, JSON_WHITESPACE};
use crate::tokenizer::Tokenizer;
use crate::tool_calls::ToolFormat;
use rmlx_core::Result;
use serde_json::{json, Value as Json};
use std::fmt::Write;

/// Which calls a forced `tool_choice` allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForcedTools {
    /// `"required"`: a call to any offered tool; `parallel`: one or more (Hermes, Llama 3).
    Required { parallel: bool },
    /// `{"type": "function", "function": {"name": …}}`: exactly one call, to this function.
    Function(String),
}

/// One offered tool: its name and its arguments' schema.
struct Tool<'a> {
    name: &'a str,
    parameters: Json,
}

/// The offered tools (OpenAI's `tools` array) a forced choice allows.
fn allowed<'a>(tools: &'a [Json], forced: &ForcedTools) -> Result<Vec<Tool<'a>>> {
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let f = t.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Json::as_str)
            .ok_or_else(|| err(format!("tools[{i}]: expected function.name, a string")))?;
        if let ForcedTools::Function(want) = forced {
            if name != want {
                continue;
            }
        }
        // No parameters (or null): OpenAI reads that as a function without arguments; any
        // object is accepted, as the model may still write `{}`.
        let mut parameters = match f.and_then(|f| f.get("parameters")) {
            None | Some(Json::Null) => json!({"type": "object"}),
            Some(p @ Json::Object(_)) => p.clone(),
            Some(_) => {
                return Err(err(format!(
                    "tools[{i}].function.parameters: expected a JSON schema object"
                )))
            }
        };
        // The same bounded whitespace as response_format's JSON (see JSON_WHITESPACE).
        if let Some(o) = parameters.as_object_mut() {
            o.entry("x-guidance")
                .or_insert(json!({"whitespace_pattern": JSON_WHITESPACE}));
        }
        out.push(Tool { name, parameters });
    }
    if out.is_empty() {
        return Err(err(match forced {
            ForcedTools::Function(n) => format!("tool_choice names {n:?}, which is not in tools"),
            ForcedTools::Required { .. } => "tool_choice \"required\" needs tools".into(),
        }));
    }
    Ok(out)
}

/// A Lark string literal for `s` (llguidance's literals are JSON strings).
fn lit(s: &str) -> String {
    Json::from(s).to_string()
}

/// A Lark reference to control token `name`, by id (`<[id]>`): the trie marks special
/// tokens so that no literal can produce them.
fn control(tok: &Tokenizer, name: &str) -> Result<String> {
    tok.token_to_id(name)
        .map(|id| format!("<[{id}]>"))
        .ok_or_else(|| err(format!("this tokenizer has no {name} token")))
}

/// `<tool_call>` as the model writes it: one added token in Qwen's vocabularies (a special
/// one in some: then only its id can match), else its text.
fn hermes_tag(tok: &Tokenizer, tag: &str) -> String {
    match tok.token_to_id(tag) {
        Some(id) if tok.is_special(id) => format!("<[{id}]>"),
        _ => lit(tag),
    }
}

/// The grammar that forces `forced` among `tools` in `format`, over the whole reply.
pub fn forced_tool_calls(
    format: ToolFormat,
    tools: &[Json],
    forced: &ForcedTools,
    tok: &Tokenizer,
) -> Result<ConstraintSpec> {
    let tools = allowed(tools, forced)?;
    let parallel = matches!(forced, ForcedTools::Required { parallel: true });
    let mut g = String::new();
    let alts: Vec<String> = (0..tools.len()).map(|i| format!("call_{i}")).collect();
    let call = alts.join(" | ");
    // `fmt::Write` into a String cannot fail.
    match format {
        ToolFormat::Hermes | ToolFormat::Llama3 => {
            let (sep, open, close, args_key) = if format == ToolFormat::Hermes {
                (
                    "\n",
                    format!("{} \"\\n\"", hermes_tag(tok, "<tool_call>")),
                    format!("\"\\n\" {}", hermes_tag(tok, "</tool_call>")),
                    "arguments",
                )
            } else {
                ("; ", String::new(), String::new(), "parameters")
            };
            if parallel {
                let _ = writeln!(g, "start: call ({} call)*\ncall: {call}", lit(sep));
            } else {
                let _ = writeln!(g, "start: {call}");
            }
            for (i, t) in tools.iter().enumerate() {
                let head = format!("{{\"name\": {}, \"{args_key}\": ", Json::from(t.name));
                let _ = writeln!(g, "call_{i}: {open} {} args_{i} \"}}\" {close}", lit(&head));
            }
        }
        ToolFormat::Harmony => {
            let [channel, message, constrain, end, start] = [
                "<|channel|>",
                "<|message|>",
                "<|constrain|>",
                "<|end|>",
                "<|start|>",
            ]
            .map(|n| control(tok, n));
            let (channel, message, constrain) = (channel?, message?, constrain?);
            let _ = writeln!(
                g,
                "start: analysis? ({call})\n\
                 analysis: {channel} \"analysis\" {message} REASONING? {} {} \"assistant\"\n\
                 REASONING: /(.|\\n)+/",
                end?, start?
            );
            for (i, t) in tools.iter().enumerate() {
                let head = format!("commentary to=functions.{} ", t.name);
                let _ = writeln!(
                    g,
                    "call_{i}: {channel} {} {constrain} \"json\" {message} args_{i}",
                    lit(&head)
                );
            }
        }
    }
    for (i, t) in tools.iter().enumerate() {
        let _ = writeln!(g, "args_{i}: %json {}", t.parameters);
    }
    Ok(ConstraintSpec::whole(Grammar::Lark(g)))
}
