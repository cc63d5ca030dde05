//! The interface every model file implements, shared by generation, `logits`, `bench` and the
//! server.

use crate::batch::{Packed, SeqChunk};
use crate::cache::{CacheKind, ModelCache};
use rmlx_core::{Array, Result};

/// Which positions' logits `forward` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// (T, vocab): every position (teacher forcing, perplexity).
    All,
    /// (1, vocab): only the last position (generation).
    Last,
}

/// Facts about a loaded model that the runtime needs.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// `model_type` / GGUF architecture, e.g. "llama", "qwen2", "gpt_oss".
    pub architecture: String,
    pub vocab_size: usize,
    /// The context this model runs with (positions): the model's maximum, or less when loaded
    /// with `LoadOptions::context`. Prompts are checked against it and KV caches hold at most
    /// this many positions.
    pub context_length: usize,
    /// Longest context the model supports (`max_position_embeddings`, GGUF `context_length`).
    pub max_context_length: usize,
    pub num_layers: usize,
    pub hidden_size: usize,
    /// Parameters (logical elements) and bytes of the weights, for reports.
    pub parameters: usize,
    pub weight_bytes: usize,
}

pub trait Model: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Fresh per-layer caches of `kind` (full or rotating, as each layer needs).
    fn make_cache_of(&self, kind: CacheKind) -> Result<ModelCache>;

    /// Fresh exact (f32) caches. Cannot fail for a loaded model: the only error of
    /// `make_cache_of` is a zero sliding window, which loading refuses.
    fn make_cache(&self) -> ModelCache {
        self.make_cache_of(CacheKind::F32)
            .expect("f32 caches always exist")
    }

    /// Runs a packed step (`batch::Packed`: the tokens of one or more sequences, sequence `i`
    /// at positions `caches[i].offset()..`) through the model, updating each sequence's cache.
    /// Returns f32 logits, lazily: `All` (ΣT, vocab), `Last` (sequences, vocab), the last token
    /// of each. What every model implements; callers use `forward` or `forward_batch`.
    fn forward_packed(
        &self,
        step: &Packed,
        caches: &mut [&mut ModelCache],
        logits: Logits,
    ) -> Result<Array>;

    /// Runs `tokens` (positions cache.offset()..+T) through the model, updating `cache`.
    /// Returns f32 logits (T, vocab) or (1, vocab), lazily: the caller evaluates.
    fn forward(&self, tokens: &[u32], cache: &mut ModelCache, logits: Logits) -> Result<Array> {
        let mut caches = [cache];
        let step = Packed::new(self, &[SeqChunk { tokens }], &caches)?;
        self.forward_packed(&step, &mut caches, logits)
    }

    /// Runs one step of several sequences at once, chunk `i` into `caches[i]` (continuous
    /// batching: one token of each decoding sequence, prompt chunks of the others). The
    /// weights are read once for all rows; each sequence attends to its own cache. Returns f32
    /// logits (sequences, vocab), the last token's of each, lazily. Equal to running each
    /// chunk alone with `forward(.., Logits::Last)`, up to float summation order.
    fn forward_batch(&self, batch: &[SeqChunk], caches: &mut [&mut ModelCache]) -> Result<Array> {
        let step = Packed::new(self, batch, caches)?;
        self.forward_packed(&step, caches, Logits::Last)
    }

    /// Checks a chunk before it is run: ids in the vocabulary, context not exceeded.
    fn check_tokens(&self, tokens: &[u32], cache: &ModelCache) -> Result<()> {
        let info = self.info();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= info.vocab_size) {
            return Err(rmlx_core::Error::msg(format!(
                "{}: token id {bad} is outside the vocabulary (size {})",
                info.architecture, info.vocab_size
            )));
        }
        // Entry points check whole requests before computing (`context::check_fits`); this
        // guards every chunk of callers that drive `forward` themselves.
        let end = cache.offset() + tokens.len();
        if end > info.context_length {
            return Err(rmlx_core::Error::msg(format!(
                "{}: {} cached + {} new tokens exceed the context of {} tokens",
                info.architecture,
                cache.offset(),
                tokens.len(),
                info.context_length
            )));
        }
        Ok(())
    }
}
