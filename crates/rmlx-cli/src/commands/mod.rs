//! Subcommands, one file each.

mod bench;
mod chat;
mod fetch_nvrtc;
mod generate;
pub mod inspect;
mod logits;
mod peak_memory;
mod perplexity;
mod sampling;
mod serve;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Generate text from a prompt (streamed to stdout; timings on stderr).
    Generate(generate::Args),
    /// Talk with a model: history, streaming, /reset, /exit.
    Chat(chat::Args),
    /// Show a model's format, architecture, tensors and metadata (reads headers only).
    Inspect(inspect::Args),
    /// Logits of a token sequence as float32 .npy [T, vocab].
    Logits(logits::Args),
    /// Perplexity of a text file, llama-perplexity's protocol (chunks of --ctx, second half scored).
    Perplexity(perplexity::Args),
    /// Prefill and decode speed on random tokens (like llama-bench).
    Bench(bench::Args),
    /// Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, ...).
    Serve(serve::Args),
    /// Fetch NVRTC (CUDA's run-time compiler) from PyPI, for a GPU without a CUDA toolkit.
    FetchNvrtc(fetch_nvrtc::Args),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Logits(a) => logits::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Serve(a) => serve::run(a),
        Command::FetchNvrtc(a) => fetch_nvrtc::run(a),
    }
}
