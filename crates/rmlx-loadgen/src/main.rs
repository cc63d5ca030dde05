//! rmlx-loadgen: a load benchmark and soak client for any OpenAI-compatible server (`rmlx
//! serve`, llama.cpp's `llama-server`, vLLM, …).
//!
//! N concurrent streams each send streamed requests (`stream: true`,
//! `stream_options.include_usage`) from a fixed prompt set with a fixed `max_tokens` and
//! temperature 0 (or a seed), one after another, for a number of requests or a duration. Each
//! request's time to first token, the gaps between its text chunks and its token count (from
//! the usage chunk) are recorded; the run prints a table and can write JSON. Optionally a client
//! hangs up mid-stream at random (`--disconnect-prob`). A request that errs (non-200, an error
//! in the stream, a broken protocol) or is lost (no end within the timeout, no `[DONE]`) makes
//! the exit status 1.

#[cfg(test)]
mod mock_tests;
mod report;
mod request;
mod sse;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use report::Summary;
use request::{Outcome, Record, Target};
use serde_json::{json, Value as Json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Api {
    /// `/v1/chat/completions` with one user message.
    Chat,
    /// `/v1/completions` with the prompt as text.
    Completions,
}

#[derive(Parser)]
#[command(name = "rmlx-loadgen", version, about)]
struct Args {
    /// The server's base URL (the API is under /v1).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, value_enum, default_value = "chat")]
    api: Api,
    /// The `model` field (default: the first id `/v1/models` lists).
    #[arg(long)]
    model: Option<String>,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key: Option<String>,
    /// Concurrent streams; each sends its next request when the last one ends.
    #[arg(short = 'c', long, default_value_t = 1)]
    streams: usize,
    /// Requests in all (default: 4 a stream, unless --duration is given).
    #[arg(short = 'n', long)]
    requests: Option<usize>,
    /// Seconds to keep sending; requests under way at the end are finished and counted.
    #[arg(short = 'd', long)]
    duration: Option<f64>,
    #[arg(long, default_value_t = 128)]
    max_tokens: u64,
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// The request's `seed` (the same for every request).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Prompts, one a line (default: a built-in set of 16 that ask for long answers). Stream
    /// `s`'s `j`-th request uses prompt `(s + j·streams) mod count`.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// JSON merged into every request body (e.g. '{"ignore_eos": true}' for servers that know it).
    #[arg(long)]
    extra: Option<String>,
    /// Requests run one at a time before the measurement, not counted (loads caches, pages in
    /// weights). A failed one stops the run.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Probability that a request is dropped on purpose: the client hangs up after a uniformly
    /// random number of text chunks in 0..=max_tokens (0: right after the headers).
    #[arg(long, default_value_t = 0.0)]
    disconnect_prob: f64,
    /// Seed of the client's own choices (which requests are dropped, and when).
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    /// A request with no end after this many seconds is lost.
    #[arg(long, default_value_t = 300)]
    request_timeout: u64,
    /// Wait up to this many seconds for `GET /health` to answer 200 before starting.
    #[arg(long, default_value_t = 0)]
    wait_ready: u64,
    /// Print a progress line every this many seconds (0: none).
    #[arg(long, default_value_t = 0)]
    progress: u64,
    /// Do not ask for `stream_options.include_usage` (tokens are then counted as text chunks).
    #[arg(long)]
    no_usage: bool,
    /// A name for this run in the title and the JSON (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Write the settings, the summary and every request here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The longest duration, wait or timeout taken (a year).
const MAX_SECONDS: u64 = 365 * 24 * 3600;
const MAX_STREAMS: usize = 10_000;

const PROMPTS: [&str; 16] = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a steam engine works, step by step.",
    "Describe the water cycle to a curious ten-year-old, with examples.",
    "Write a detailed travel guide for a week in Kyoto.",
    "Explain the rules of chess and give advice to a beginner.",
    "Tell the history of the printing press and why it mattered.",
    "Write a long letter from a sailor to his family at home.",
    "Explain how vaccines train the immune system, in plain words.",
    "Describe how to bake bread at home, from flour to the finished loaf.",
    "Write a story about a robot who learns to paint.",
    "Explain how the internet delivers a web page, from typing the address to the screen.",
    "Describe the life cycle of a star, from its birth to its death.",
    "Write a detailed recipe for a vegetable soup and explain each step.",
    "Explain why the sky is blue and why sunsets are red.",
    "Write a long fairy tale about a fox and a crow.",
    "Describe a day in the life of a medieval blacksmith.",
];

fn main() {
    let args = Args::parse();
    // One thread: the client shares the machine with the server it measures (on a 2-core box
    // a second runtime thread would take CPU from the server), and parsing a few hundred small
    // chunks a second needs little.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmlx-loadgen: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("rmlx-loadgen: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a request errored or was lost.
async fn run(args: Args) -> Result<bool> {
    check(&args)?;
    let base = args.url.trim_end_matches('/').to_string();
    let prompts = load_prompts(args.prompts.as_ref())?;
    let extra = match &args.extra {
        Some(s) => match serde_json::from_str::<Json>(s).context("--extra is not JSON")? {
            Json::Object(m) => m,
            _ => bail!("--extra must be a JSON object"),
        },
        None => serde_json::Map::new(),
    };
    // No proxy from the environment: the servers measured are local, and a proxy would be
    // measured too. A fresh connection per request (no idle pool): llama-server closes idle
    // keep-alive connections on its own schedule, and a request sent on one it is closing at
    // that moment fails with "connection closed before message completed" through no fault
    // of either side; a loopback connect costs tens of microseconds.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client")?;
    if args.wait_ready > 0 {
        wait_ready(&client, &base, args.wait_ready).await?;
    }
    let model = match &args.model {
        Some(m) => m.clone(),
        None => first_model(&client, &base, args.api_key.as_deref()).await?,
    };
    let path = match args.api {
        Api::Chat => "/v1/chat/completions",
        Api::Completions => "/v1/completions",
    };
    let target = Arc::new(Target {
        client,
        url: format!("{base}{path}"),
        api_key: args.api_key.clone(),
        timeout: Duration::from_secs(args.request_timeout),
        want_usage: !args.no_usage,
        max_tokens: args.max_tokens,
    });
    let bodies: Arc<Vec<String>> = Arc::new(
        prompts
            .iter()
            .map(|p| body(&args, &model, p, &extra).to_string())
            .collect(),
    );

    for i in 0..args.warmup {
        let p = i % bodies.len();
        let r = request::run(&target, bodies[p].clone(), None, 0, p, Instant::now()).await;
        if r.outcome != Outcome::Ok {
            bail!("warm-up request {i} failed: {:?}", r.outcome);
        }
    }

    let title = format!(
        "{}{}{} streams, max_tokens {}, {} at {}",
        args.label,
        if args.label.is_empty() { "" } else { ": " },
        args.streams,
        args.max_tokens,
        model,
        target.url
    );
    let records = drive(&args, &target, &bodies).await;
    let summary = Summary::of(&records.0, records.1, args.duration);
    print!("{}", summary.table(&title));
    if let Some(path) = &args.json {
        let config = json!({
            "label": args.label, "url": target.url, "model": model, "streams": args.streams,
            "requests": args.requests, "duration_s": args.duration, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "seed": args.seed, "prompts": prompts.len(),
            "warmup": args.warmup, "disconnect_prob": args.disconnect_prob,
            "rng_seed": args.rng_seed, "request_timeout_s": args.request_timeout,
            "include_usage": !args.no_usage, "extra": extra,
        });
        let out = report::json(config, &summary, &records.0);
        let text = serde_json::to_string_pretty(&out).context("serializing the results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summary.clean())
}

fn check(args: &Args) -> Result<()> {
    // Each stream is a task with its own connection: far past what a server takes at once.
    if !(1..=MAX_STREAMS).contains(&args.streams) {
        bail!("--streams must be within 1..={MAX_STREAMS}");
    }
    if args.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    // A bound keeps `start + duration` from overflowing the clock (a panic).
    if args
        .duration
        .is_some_and(|d| !(d > 0.0 && d <= MAX_SECONDS as f64))
    {
        bail!("--duration must be a number of seconds within (0, {MAX_SECONDS}]");
    }
    if args.wait_ready.max(args.progress) > MAX_SECONDS {
        bail!("--wait-ready and --progress must be at most {MAX_SECONDS} seconds");
    }
    if !(0.0..=1.0).contains(&args.disconnect_prob) {
        bail!("--disconnect-prob must be within 0..=1");
    }
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    if !(1..=MAX_SECONDS).contains(&args.request_timeout) {
        bail!("--request-timeout must be within 1..={MAX_SECONDS} seconds");
    }
    Ok(())
}

fn load_prompts(path: Option<&PathBuf>) -> Result<Vec<String>> {
    let Some(path) = path else {
        return Ok(PROMPTS.iter().map(|p| p.to_string()).collect());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if prompts.is_empty() {
        bail!("{} holds no prompt (one a line)", path.display());
    }
    Ok(prompts)
}

/// The request body for one prompt.
fn body(args: &Args, model: &str, prompt: &str, extra: &serde_json::Map<String, Json>) -> Json {
    let mut b = json!({
        "model": model,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
        "stream": true,
    });
    match args.api {
        Api::Chat => b["messages"] = json!([{"role": "user", "content": prompt}]),
        Api::Completions => b["prompt"] = json!(prompt),
    }
    if !args.no_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    for (k, v) in extra {
        b[k] = v.clone();
    }
    b
}

/// Polls `/health` until it answers 200 (llama-server answers 503 while it loads).
async fn wait_ready(client: &reqwest::Client, base: &str, secs: u64) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut last = String::from("no answer");
    while Instant::now() < until {
        let req = client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(5));
        match req.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{base}/health did not answer 200 within {secs} s (last: {last})")
}

/// The first model id `/v1/models` lists.
async fn first_model(client: &reqwest::Client, base: &str, key: Option<&str>) -> Result<String> {
    let mut req = client
        .get(format!("{base}/v1/models"))
        .timeout(Duration::from_secs(30));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("GET {base}/v1/models"))?;
    let status = resp.status();
    let text = resp.text().await.context("reading /v1/models")?;
    if status != reqwest::StatusCode::OK {
        bail!("GET {base}/v1/models: HTTP {status}: {text}");
    }
    let v: Json = serde_json::from_str(&text).context("/v1/models is not JSON")?;
    v.pointer("/data/0/id")
        .and_then(Json::as_str)
        .map(String::from)
        .with_context(|| format!("/v1/models lists no model: {text}"))
}

/// Live counts for the progress line.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    dropped: AtomicUsize,
    failed: AtomicUsize,
    tokens: AtomicU64,
}

/// Runs the streams; returns every request's record and the wall time in seconds.
async fn drive(args: &Args, target: &Arc<Target>, bodies: &Arc<Vec<String>>) -> (Vec<Record>, f64) {
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    // Without --duration: the total, or 4 a stream.
    let limit = match (args.requests, deadline) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(4 * args.streams),
    };
    let issued = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let records = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for s in 0..args.streams {
        let (target, bodies, issued, tally, records) = (
            target.clone(),
            bodies.clone(),
            issued.clone(),
            tally.clone(),
            records.clone(),
        );
        let (streams, p_drop, max_tokens) = (args.streams, args.disconnect_prob, args.max_tokens);
        let mut rng = StdRng::seed_from_u64(args.rng_seed.wrapping_add(s as u64));
        tasks.push(tokio::spawn(async move {
            for j in 0.. {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if limit.is_some_and(|n| issued.fetch_add(1, Ordering::Relaxed) >= n) {
                    break;
                }
                let p = (s + j * streams) % bodies.len();
                let drop_after = (p_drop > 0.0 && rng.gen_bool(p_drop))
                    .then(|| rng.gen_range(0..=max_tokens as usize));
                let r = request::run(&target, bodies[p].clone(), drop_after, s, p, start).await;
                match &r.outcome {
                    Outcome::Ok => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        tally.tokens.fetch_add(r.tokens(), Ordering::Relaxed);
                    }
                    Outcome::Dropped => {
                        tally.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Error(m) | Outcome::Lost(m) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("rmlx-loadgen: stream {s}, prompt {p}: {m}");
                    }
                }
                // A poisoned lock only means another stream panicked; its records still count.
                records.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            }
        }));
    }
    let progress = (args.progress > 0).then(|| {
        let (tally, every) = (tally.clone(), Duration::from_secs(args.progress));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = start.elapsed().as_secs_f64();
                let tokens = tally.tokens.load(Ordering::Relaxed);
                eprintln!(
                    "rmlx-loadgen: {t:.0} s: {} ok, {} dropped, {} failed, {tokens} tokens \
                     ({:.1} tok/s)",
                    tally.ok.load(Ordering::Relaxed),
                    tally.dropped.load(Ordering::Relaxed),
                    tally.failed.load(Ordering::Relaxed),
                    tokens as f64 / t
                );
            }
        })
    });
    for t in tasks {
        if let Err(e) = t.await {
            eprintln!("rmlx-loadgen: a stream's task failed: {e}");
        }
    }
    let wall = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    let mut records = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    records.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    (records, wall)
}
