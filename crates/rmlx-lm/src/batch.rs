//! One forward step over several sequences: their tokens packed as one activation (ΣT rows),
//! so every matmul, quantized matmul and MoE reads its weights once per step, with attention
//! run per sequence against its own KV cache.
//!
//! A step's inputs are explicit: the packed token ids, each token's position, and which rows
//! belong to which sequence ([`Packed`]); the caches are the state it reads and writes. A
//! single sequence is the one-chunk case and builds exactly the graph it always did (no
//! slicing, no concatenation).

use crate::cache::ModelCache;
use crate::model::{Logits, Model};
use rmlx_core::ops::AttentionMask;
use rmlx_core::{concat, Array, Error, Result};
use std::ops::Range;

/// One sequence's part of a step: its next tokens, at positions `cache.offset()..` of its cache
/// (one token while decoding, a chunk of the prompt while prefilling).
#[derive(Clone, Copy, Debug)]
pub struct SeqChunk<'a> {
    pub tokens: &'a [u32],
}

/// A step's tokens packed row after row, sequence after sequence.
pub struct Packed {
    /// (ΣT) u32 token ids.
    pub ids: Array,
    /// (ΣT) i32: each token's position in its own sequence (RoPE reads these).
    pub positions: Array,
    seqs: Vec<PackedSeq>,
}

struct PackedSeq {
    /// Rows of the packed activation that are this sequence's tokens.
    rows: Range<usize>,
    /// (T) i32 positions of those rows (the queries' positions in the attention mask).
    positions: Array,
}

/// What attention of one layer needs besides q, k, v.
pub struct AttendSpec<'a> {
    pub layer: usize,
    pub scale: f32,
    /// Sliding window of this layer (None: full attention).
    pub window: Option<usize>,
    /// One logit per query head that joins every softmax (gpt-oss), f32.
    pub sinks: Option<&'a Array>,
}

impl Packed {
    /// Packs `batch` for `caches` (one per chunk, in order), checking every chunk first: at
    /// least one token, ids in the vocabulary, the context not exceeded.
    pub fn new(
        model: &(impl Model + ?Sized),
        batch: &[SeqChunk],
        caches: &[&mut ModelCache],
    ) -> Result<Self> {
        if batch.is_empty() || batch.len() != caches.len() {
            return Err(Error::msg(format!(
                "forward: expected one cache per sequence and at least one sequence, found {} \
                 sequences and {} caches",
                batch.len(),
                caches.len()
            )));
        }
        let mut ids = Vec::new();
        let mut all_pos = Vec::new();
        let mut seqs = Vec::with_capacity(batch.len());
        for (i, (chunk, cache)) in batch.iter().zip(caches).enumerate() {
            if chunk.tokens.is_empty() {
                return Err(Error::msg(format!(
                    "forward: expected at least one token for sequence {i}, found none"
                )));
            }
            model.check_tokens(chunk.tokens, cache)?;
            let offset = cache.offset();
            let pos: Vec<i32> = (offset..offset + chunk.tokens.len())
                .map(|p| p as i32)
                .collect();
            let start = ids.len();
            ids.extend_from_slice(chunk.tokens);
            all_pos.extend_from_slice(&pos);
            seqs.push(PackedSeq {
                rows: start..ids.len(),
                positions: Array::from_slice(&pos, &[pos.len()])?,
            });
        }
        let n = ids.len();
        let positions = match seqs.as_slice() {
            [one] => one.positions.clone(),
            _ => Array::from_slice(&all_pos, &[n])?,
        };
        Ok(Packed {
            ids: Array::from_slice(&ids, &[n])?,
            positions,
            seqs,
        })
    }

    /// One sequence's step whose token ids are an array, typically the previous step's
    /// sampled token still on the GPU: the step can be encoded before that token is read
    /// (pipelined decode). `ids` is (T) u32 with ids the model produced itself (an argmax over
    /// its own logits), so they are not checked against the vocabulary here; the context is.
    pub fn from_ids(model: &(impl Model + ?Sized), ids: Array, cache: &ModelCache) -> Result<Self> {
        if ids.ndim() != 1 || ids.size() == 0 || ids.dtype() != rmlx_core::DType::U32 {
            return Err(Error::msg(format!(
                "forward: expected (T) u32 token ids with T ≥ 1, found {:?} {}",
                ids.shape(),
                ids.dtype()
            )));
        }
        let n = ids.size();
        let info = model.info();
        let offset = cache.offset();
        if offset + n > info.context_length {
            return Err(Error::msg(format!(
                "{}: {offset} cached + {n} new tokens exceed the context of {} tokens",
                info.architecture, info.context_length
            )));
        }
        let pos: Vec<i32> = (offset..offset + n).map(|p| p as i32).collect();
        let positions = Array::from_slice(&pos, &[n])?;
        Ok(Packed {
            ids,
            positions: positions.clone(),
            seqs: vec![PackedSeq {
                rows: 0..n,
                positions,
            }],
        })
    }

    /// Tokens in the step (ΣT).
    pub fn len(&self) -> usize {
        self.seqs.last().map_or(0, |s| s.rows.end)
    }

    /// Never true for a packed step (`new` refuses an empty batch); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequences in the step.
    pub fn num_seqs(&self) -> usize {
        self.seqs.len()
    }

    /// Attention of one layer, each sequence against its own cache: q (1, Hq, ΣT, D) and k, v
    /// (1, Hkv, ΣT, D), RoPE applied; each sequence's rows of k, v are appended to
    /// `caches[i].layers[spec.layer]` and its queries attend to that cache's view. Returns
    /// (1, Hq, ΣT, Dv).
    pub fn attend(
        &self,
        q: &Array,
        k: &Array,
        v: &Array,
        caches: &mut [&mut ModelCache],
        spec: &AttendSpec,
    ) -> Result<Array> {
        let one = self.seqs.len() == 1;
        // Rows stored as given (dense caches of one dtype): converted once for the whole
        // step, not once a sequence (the caches then write them as they are).
        let stored = caches
            .iter()
            .map(|c| c.layers.get(spec.layer).and_then(|l| l.dense_dtype()))
            .reduce(|a, b| a.filter(|&t| Some(t) == b))
            .flatten();
        let (k, v) = match stored {
            Some(t) if !one => (&k.astype(t)?, &v.astype(t)?),
            _ => (k, v),
        };
        let mut outs = Vec::with_capacity(self.seqs.len());
        for (s, cache) in self.seqs.iter().zip(caches.iter_mut()) {
            let rows = |x: &Array| -> Result<Array> {
                if one {
                    Ok(x.clone())
                } else {
                    x.slice_axis(2, s.rows.start, s.rows.end)
                }
            };
            let layer = cache.layers.get_mut(spec.layer).ok_or_else(|| {
                Error::msg(format!(
                    "forward: a cache has no layer {} (wrong model's cache?)",
                    spec.layer
                ))
            })?;
            let kv = layer.update(&rows(k)?, &rows(v)?)?;
            let mask = AttentionMask {
                q_pos: s.positions.clone(),
                k_pos: kv.k_pos,
                window: spec.window,
            };
            outs.push(rows(q)?.scaled_dot_product_attention(
                &kv.keys, &kv.values, spec.scale, &mask, spec.sinks,
            )?);
        }
        if one {
            return Ok(outs.remove(0));
        }
        concat(&outs, 2)
    }

    /// The rows of hidden states `x` (ΣT, H) whose logits are wanted: every row (`All`), or
    /// the last row of each sequence (`Last`: (num_seqs, H)).
    pub fn logit_rows(&self, x: &Array, logits: Logits) -> Result<Array> {
        let n = self.len();
        if logits == Logits::All || n == self.seqs.len() {
            return Ok(x.clone()); // every row is some sequence's last (decode)
        }
        if let [one] = self.seqs.as_slice() {
            return x.slice_axis(0, one.rows.end - 1, one.rows.end);
        }
        let last: Vec<u32> = self.seqs.iter().map(|s| s.rows.end as u32 - 1).collect();
        x.take(&Array::from_slice(&last, &[last.len()])?, 0)
    }
}
