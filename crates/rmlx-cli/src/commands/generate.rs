//! `rmlx generate --prompt TEXT`: streams only the generated text to stdout; timings to stderr.

use super::sampling::{load, timing_line, GenFlags};
use anyhow::Result;
use rmlx_lm::{harmony, Prompt};
use serde_json::json;
use std::io::Write;

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
    #[command(flatten)]
    flags: GenFlags,
}

pub fn run(a: Args) -> Result<()> {
    let engine = load(&a.flags)?;
    let prompt = if a.no_chat_template || engine.template.is_none() {
        Prompt::Text(a.prompt.clone())
    } else {
        Prompt::Chat(vec![json!({"role": "user", "content": a.prompt})])
    };
    let harmony_out = engine.uses_harmony() && !a.no_chat_template;
    let mut out = std::io::stdout().lock();
    let g = if harmony_out {
        // Channels are known only once their header is complete: print the final answer at
        // the end (reasoning to stderr on request).
        let g = engine.generate(&prompt, &a.flags.options(true), None, &mut |_| {})?;
        if a.show_reasoning {
            eprintln!("[reasoning] {}", harmony::analysis_text(&g.text));
        }
        writeln!(out, "{}", harmony::final_text(&g.text))?;
        g
    } else {
        let g = engine.generate(&prompt, &a.flags.options(false), None, &mut |t| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        g
    };
    eprintln!("rmlx: {}", timing_line(&g.stats));
    Ok(())
}
