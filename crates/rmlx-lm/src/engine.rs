//! `Engine`: a loaded model with its tokenizer and chat template — the object an app embeds.

use crate::chat_template::ChatTemplate;
use crate::load::{load_model_with, LoadOptions, LoadedModel, Progress};
use crate::model::Model;
use crate::tokenizer::{GgufVocab, Tokenizer};
use rmlx_core::{Error, Result};
use rmlx_io::{Metadata, ModelFiles};
use serde_json::Value as Json;
use std::path::Path;
use std::sync::Arc;

pub struct Engine {
    pub model: Box<dyn Model>,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub files: Arc<ModelFiles>,
    /// Structured output's view of the tokenizer, built on first use.
    pub(crate) grammars: crate::constraint::Grammars,
}

impl Engine {
    /// Loads a model file or directory with its tokenizer (GGUF metadata, or `tokenizer.json`
    /// next to the weights) and chat template.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with_progress(path, None)
    }

    /// `load` onto the default device, reporting upload progress (bytes done, total) when that
    /// is a GPU.
    pub fn load_with_progress(path: impl AsRef<Path>, progress: Option<Progress>) -> Result<Self> {
        let opts = LoadOptions {
            progress,
            ..LoadOptions::default()
        };
        Self::load_with(path, opts)
    }

    /// `load` onto the default device with options (a smaller context, upload progress).
    pub fn load_with(path: impl AsRef<Path>, opts: LoadOptions) -> Result<Self> {
        let LoadedModel { model, files } =
            load_model_with(path.as_ref(), rmlx_core::default_device(), opts)?;
        let tokenizer = tokenizer_for(&files)?;
        let template = match tokenizer.chat_template() {
            Some(_) => Some(ChatTemplate::from_tokenizer(&tokenizer)?),
            None => None,
        };
        Ok(Engine {
            model,
            tokenizer,
            template,
            files,
            grammars: Default::default(),
        })
    }

    /// Token ids of a prompt: a chat (rendered with the model's template, generation prompt
    /// added) or raw text.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Tokens(t) => Ok(t.clone()),
            Prompt::Text(t) => self.tokenizer.encode(t, true),
            Prompt::Chat(messages) => self.encode_chat(messages),
            Prompt::ChatWith { messages, vars } => {
                let text = self.template()?.render_with(messages, true, vars)?;
                self.tokenizer.encode(&text, false)
            }
        }
    }

    /// Token ids of chat messages rendered with the template, generation prompt added.
    pub fn encode_chat(&self, messages: &[Json]) -> Result<Vec<u32>> {
        // The template already wrote BOS where the model wants it.
        self.tokenizer.encode(&self.render_chat(messages)?, false)
    }

    pub fn render_chat(&self, messages: &[Json]) -> Result<String> {
        self.template()?.render(messages, true)
    }

    fn template(&self) -> Result<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| {
            Error::msg(format!(
                "model {}: has no chat template (use raw text)",
                self.files.path().display()
            ))
        })
    }

    /// How this model writes tool calls (None: its chat template takes no tools).
    pub fn tool_format(&self) -> Option<crate::tool_calls::ToolFormat> {
        crate::tool_calls::ToolFormat::detect(
            &self.model.info().architecture,
            self.template.as_ref().map(|t| t.source()),
        )
    }

    /// True for gpt-oss, whose output is harmony channels.
    pub fn uses_harmony(&self) -> bool {
        self.model.info().architecture == "gpt_oss"
    }
}

/// What to generate from.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Raw text, tokenized as is (BOS as the model's metadata says).
    Text(String),
    /// Chat messages (`{"role": …, "content": …}`), rendered with the chat template.
    Chat(Vec<Json>),
    /// Chat messages rendered with extra template variables, e.g. gpt-oss's
    /// `reasoning_effort` ("low", "medium", "high"), or `tools`.
    ChatWith {
        messages: Vec<Json>,
        vars: serde_json::Map<String, Json>,
    },
    Tokens(Vec<u32>),
}

fn tokenizer_for(files: &ModelFiles) -> Result<Tokenizer> {
    if let Some(g) = files.gguf() {
        return Tokenizer::from_gguf_vocab(&gguf_vocab(g.metadata())?);
    }
    let path = files.path();
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let tj = dir.join("tokenizer.json");
    if !tj.exists() {
        return Err(Error::format(format!(
            "model {}: no tokenizer (expected {} or a GGUF file with tokenizer.ggml.* metadata)",
            path.display(),
            tj.display()
        )));
    }
    Tokenizer::from_file(tj)
}

/// The `tokenizer.ggml.*` keys of a GGUF file.
pub fn gguf_vocab(m: &Metadata) -> Result<GgufVocab> {
    let opt_u32 = |k: &str| m.get(k).and_then(|v| v.as_int()).map(|v| v as u32);
    let opt_bool = |k: &str| m.get(k).and_then(|_| m.get_bool(k).ok());
    let opt = |k: &str| m.get(k).is_some();
    Ok(GgufVocab {
        model: m.get_str("tokenizer.ggml.model")?.to_string(),
        pre: m
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        tokens: m
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_string)
            .collect(),
        scores: if opt("tokenizer.ggml.scores") {
            Some(m.get_f32_array("tokenizer.ggml.scores")?)
        } else {
            None
        },
        token_types: if opt("tokenizer.ggml.token_type") {
            Some(m.get_i32_array("tokenizer.ggml.token_type")?)
        } else {
            None
        },
        merges: if opt("tokenizer.ggml.merges") {
            Some(
                m.get_str_array("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            )
        } else {
            None
        },
        bos_id: opt_u32("tokenizer.ggml.bos_token_id"),
        eos_id: opt_u32("tokenizer.ggml.eos_token_id"),
        unk_id: opt_u32("tokenizer.ggml.unknown_token_id"),
        pad_id: opt_u32("tokenizer.ggml.padding_token_id"),
        add_bos: opt_bool("tokenizer.ggml.add_bos_token"),
        add_eos: opt_bool("tokenizer.ggml.add_eos_token"),
        add_space_prefix: opt_bool("tokenizer.ggml.add_space_prefix"),
        chat_template: m
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}
