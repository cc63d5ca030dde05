//! A server on an ephemeral loopback port, in-process, over a tiny model.

#![allow(dead_code)]

#[path = "../../../rmlx-lm/tests/support/tiny_chat.rs"]
pub mod tiny_chat;

use rmlx_lm::{Engine, Worker};
use rmlx_server::{AppState, ServerConfig};
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

/// The model in `dir` served as `MODEL_ID`.
pub async fn start_with(
    dir: tempfile::TempDir,
    queue: usize,
    edit: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let engine = Engine::load(dir.path()).expect("tiny model loads");
    let worker = Arc::new(Worker::spawn(engine, queue).expect("worker starts"));
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
