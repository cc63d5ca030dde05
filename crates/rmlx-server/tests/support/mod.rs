//! A server on an ephemeral loopback port, in-process, over a tiny model.

#![allow(dead_code)]

#[path = "../../../rmlx-lm/tests/support/tiny_chat.rs"]
pub mod tiny_chat;

use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use rmlx_lm::{Engine, Event, GenerateOptions, Prompt, SamplerConfig, Worker, WorkerOptions};
use rmlx_server::{AppState, ServerConfig};
use std::sync::mpsc;
use std::sync::Arc;

pub const MODEL_ID: &str = "tiny-llama";

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub worker: Arc<Worker>,
    /// Keeps the model files alive.
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn model_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn v1(&self) -> String {
        format!("{}/v1", self.base)
    }

    pub fn client(&self) -> async_openai::Client<async_openai::config::OpenAIConfig> {
        let cfg = async_openai::config::OpenAIConfig::new()
            .with_api_base(self.v1())
            .with_api_key("unused");
        async_openai::Client::with_config(cfg)
    }
}

/// The tiny Llama chat model (context `context`) served with `config` changes and a queue of
/// `queue` waiting requests.
pub async fn start(
    context: usize,
    queue: usize,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    start_with(tiny_chat::llama_chat(context), queue, edit).await
}

/// The model in `dir` served as `MODEL_ID`, one request at a time.
pub async fn start_with(
    dir: tempfile::TempDir,
    queue: usize,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let opts = WorkerOptions {
        queue,
        ..WorkerOptions::default()
    };
    start_batched(dir, opts, edit).await
}

/// The model in `dir` served as `MODEL_ID` by a worker with `opts` (several requests at once).
pub async fn start_batched(
    dir: tempfile::TempDir,
    opts: WorkerOptions,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let engine = Engine::load(dir.path()).expect("tiny model loads");
    start_engine(engine, dir, opts, edit).await
}

/// `engine` served as `MODEL_ID` by a worker with `opts`; `dir` is kept alive with it.
pub async fn start_engine(
    engine: Engine,
    dir: tempfile::TempDir,
    opts: WorkerOptions,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let worker = Arc::new(Worker::spawn_with(engine, opts).expect("worker starts"));
    let mut config = ServerConfig::new(MODEL_ID);
    edit(&mut config);
    let state = AppState::new(worker.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        rmlx_server::serve(listener, state)
            .await
            .expect("server runs");
    });
    TestServer {
        base: format!("http://{addr}"),
        worker,
        _dir: dir,
    }
}

/// Puts a 4-token request on the worker whose sink holds the worker on its first token until
/// the returned sender is used (or dropped): the worker is busy, deterministically.
pub fn block_worker(server: &TestServer) -> mpsc::Sender<()> {
    let opts = GenerateOptions {
        max_tokens: Some(4),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    };
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let mut first = true;
    let sink = Box::new(move |_e: Event| {
        if first {
            first = false;
            let _ = started_tx.send(());
            let _ = released.recv();
        }
        true
    });
    let prompt = Prompt::Text("Hi".into());
    server
        .worker
        .submit(&prompt, opts, sink)
        .expect("queue the blocking request");
    started.recv().expect("the blocking request starts");
    release
}

/// Waits (off the async runtime) for a request's end; returns its stats.
pub async fn wait_done(rx: mpsc::Receiver<Event>) -> rmlx_lm::GenerationStats {
    tokio::task::spawn_blocking(move || loop {
        match rx.recv().expect("the request ends with Done or Error") {
            Event::Done(s) => break s,
            Event::Text(_) | Event::Logprob(_) => {}
            Event::Error(e) => panic!("{e}"),
        }
    })
    .await
    .expect("waiting thread")
}

/// A greedy chat request for `MODEL_ID` with one user message, `edit`ed.
pub fn chat_request(
    question: &str,
    max_tokens: u32,
    edit: impl FnOnce(&mut CreateChatCompletionRequestArgs),
) -> CreateChatCompletionRequest {
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model(MODEL_ID)
        .max_completion_tokens(max_tokens)
        .temperature(0.0)
        .messages(vec![ChatCompletionRequestUserMessageArgs::default()
            .content(question)
            .build()
            .expect("a user message")
            .into()]);
    edit(&mut args);
    args.build().expect("a chat request")
}
