//! Sampling and model flags shared by `generate` and `chat`.

use rmlx_lm::SamplerConfig;
use std::path::PathBuf;
use std::str::FromStr;

/// `--max-tokens`: a count, or `ctx` for as many as the context leaves.
#[derive(Clone, Copy, Debug)]
pub struct MaxTokens(pub Option<usize>);

impl FromStr for MaxTokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ctx" => Ok(MaxTokens(None)),
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(MaxTokens(Some(n))),
                _ => Err(format!(
                    "expected a positive number of tokens or `ctx`, found `{s}`"
                )),
            },
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct GenFlags {
    /// Model file or directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Most tokens to generate; the prompt plus these must fit the context. `ctx`: until the
    /// end of the text or of the context.
    #[arg(long, default_value = "256")]
    pub max_tokens: MaxTokens,
    /// Context in tokens, at most the model's (default: the model's): a smaller one bounds
    /// the KV cache; chat drops its oldest turns to stay within it.
    #[arg(long)]
    pub ctx: Option<usize>,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Same seed, same output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when the output contains this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// KV cache storage: f32, bf16, f16, q8, q4, k8v4.
    #[arg(long, default_value = "f32")]
    pub kv_cache: rmlx_lm::cache::CacheKind,
}

impl GenFlags {
    pub fn sampler(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            ..SamplerConfig::default()
        }
    }

    pub fn options(&self, keep_special: bool) -> rmlx_lm::GenerateOptions {
        rmlx_lm::GenerateOptions {
            max_tokens: self.max_tokens.0,
            sampler: self.sampler(),
            stop: self.stop.clone(),
            keep_special,
            kv_cache: self.kv_cache,
            logprobs: None,
            constraint: None,
        }
    }
}

/// Loads the engine, with a note on stderr.
pub fn load(flags: &GenFlags) -> anyhow::Result<rmlx_lm::Engine> {
    load_model(flags.model.clone(), flags.ctx)
}

/// Loads `model` (default: the default model) with a context of `ctx` tokens (default: the
/// model's), showing progress and a note on stderr.
pub fn load_model(model: Option<PathBuf>, ctx: Option<usize>) -> anyhow::Result<rmlx_lm::Engine> {
    let path = rmlx_lm::default_model::resolve(model)?;
    let t = std::time::Instant::now();
    let mut opts = rmlx_lm::LoadOptions {
        context: ctx,
        ..Default::default()
    };
    let e = if rmlx_core::default_device().is_gpu() {
        // Weights are uploaded once as the model is built: show that instead of prefaulting.
        let bar = bytes_bar("uploading");
        let b = bar.clone();
        opts.progress = Some(Box::new(move |done, total| {
            b.set_length(total);
            b.set_position(done);
        }));
        let e = rmlx_lm::Engine::load_with(&path, opts)?;
        bar.finish_and_clear();
        e
    } else {
        let e = rmlx_lm::Engine::load_with(&path, opts)?;
        prefault_with_bar(&e)?;
        e
    };
    eprintln!(
        "rmlx: loaded {} ({}) in {:.2} s",
        path.display(),
        e.model.info().architecture,
        t.elapsed().as_secs_f64()
    );
    Ok(e)
}

pub fn timing_line(s: &rmlx_lm::GenerationStats) -> String {
    format!(
        "prompt {} tok ({} computed) {:.1} tok/s | generated {} tok {:.1} tok/s | {:?}",
        s.prompt_tokens,
        s.prefilled_tokens,
        s.prefill_tok_s(),
        s.generated_tokens,
        s.decode_tok_s(),
        s.finish
    )
}

/// Large models: touch the mapped weights up front behind a progress bar, so the first tokens
/// do not crawl through page faults.
fn prefault_with_bar(e: &rmlx_lm::Engine) -> anyhow::Result<()> {
    const LARGE: usize = 1 << 30;
    if e.model.info().weight_bytes < LARGE {
        return Ok(());
    }
    let bar = bytes_bar("loading");
    bar.set_length(e.model.info().weight_bytes as u64);
    rmlx_lm::load::prefault(&e.files, &mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    Ok(())
}

fn bytes_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}}"
        ))
        .expect("valid template"),
    );
    bar
}
