//! `rmlx generate --prompt TEXT`: streams only the generated text to stdout; timings to stderr.

use super::sampling::{load, timing_line, GenFlags};
use anyhow::{Context, Result};
use rmlx_lm::{harmony, ConstraintSpec, Grammar, Prompt};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    prompt: String,
    /// Tokenize the prompt as is instead of wrapping it as a user message.
    #[arg(long)]
    no_chat_template: bool,
    /// gpt-oss: also print the reasoning (analysis channel) to stderr.
    #[arg(long)]
    show_reasoning: bool,
    /// Structured output: the reply is JSON that validates against the JSON schema in FILE
    /// (gpt-oss with the chat template: its final answer; the reasoning stays free).
    #[arg(long, value_name = "FILE", conflicts_with = "json_object")]
    json_schema: Option<PathBuf>,
    /// Structured output: the reply is a JSON object.
    #[arg(long)]
    json_object: bool,
    #[command(flatten)]
    flags: GenFlags,
}

/// The grammar `--json-schema` / `--json-object` ask for, read before the model loads.
fn grammar(a: &Args) -> Result<Option<Grammar>> {
    if a.json_object {
        return Ok(Some(Grammar::JsonObject));
    }
    let Some(path) = &a.json_schema else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--json-schema: cannot read {}", path.display()))?;
    let schema = serde_json::from_str(&text)
        .with_context(|| format!("--json-schema: {} is not JSON", path.display()))?;
    Ok(Some(Grammar::JsonSchema(schema)))
}

pub fn run(a: Args) -> Result<()> {
    let grammar = grammar(&a)?;
    let engine = load(&a.flags)?;
    let prompt = if a.no_chat_template || engine.template.is_none() {
        Prompt::Text(a.prompt.clone())
    } else {
        Prompt::Chat(vec![json!({"role": "user", "content": a.prompt})])
    };
    let harmony_out = engine.uses_harmony() && !a.no_chat_template;
    // (A schema the grammar compiler refuses fails `generate` before any token is computed.)
    let options = |keep_special: bool| {
        let mut o = a.flags.options(keep_special);
        o.constraint = grammar.clone().map(|g| match harmony_out {
            true => ConstraintSpec::for_chat(&engine, g),
            false => ConstraintSpec::whole(g),
        });
        o
    };
    let mut out = std::io::stdout().lock();
    let g = if harmony_out {
        // Channels are known only once their header is complete: print the final answer at
        // the end (reasoning to stderr on request).
        let g = engine.generate(&prompt, &options(true), None, &mut |_| {})?;
        if a.show_reasoning {
            eprintln!("[reasoning] {}", harmony::analysis_text(&g.text));
        }
        writeln!(out, "{}", harmony::final_text(&g.text))?;
        g
    } else {
        let g = engine.generate(&prompt, &options(false), None, &mut |t| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        g
    };
    eprintln!("rmlx: {}", timing_line(&g.stats));
    Ok(())
}
