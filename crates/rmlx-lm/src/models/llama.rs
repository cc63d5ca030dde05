//! The Llama family: Llama 2/3/3.x (Llama-3 RoPE scaling), SmolLM2, Mistral, Qwen2 (q/k/v
//! biases), Qwen3 (per-head q/k RMSNorm); tied or untied embeddings. Hugging Face names;
//! GGUF sources map their names to these.

use crate::batch::{AttendSpec, Packed};
use crate::cache::{layer_cache, CacheKind, ModelCache};
use crate::layers::{Embedding, Linear};
use crate::model::{Logits, Model, ModelInfo};
use crate::weights::Weights;
use rmlx_core::ops::RopeScaling;
use rmlx_core::primitive::RopeLayout;
use rmlx_core::{Array, DType, Error, Result};

#[derive(Clone, Debug)]
pub struct LlamaConfig {
    pub architecture: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    /// HalfSplit for Hugging Face weights; Interleaved for llama GGUF files (llama.cpp's
    /// converter permutes q/k rows so that the interleaved rotation is equivalent).
    pub rope_layout: RopeLayout,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub qk_norm: bool,
    pub sliding_window: Option<usize>,
}

struct Attention {
    /// q, k and v projections fused: outputs (T, (Hq + 2·Hkv)·D).
    qkv_proj: Linear,
    o_proj: Linear,
    q_norm: Option<Array>,
    k_norm: Option<Array>,
}

struct Mlp {
    /// gate and up fused: outputs (T, 2·intermediate).
    gate_up_proj: Linear,
    down_proj: Linear,
}

struct Layer {
    input_layernorm: Array,
    self_attn: Attention,
    post_attention_layernorm: Array,
    mlp: Mlp,
}

pub struct Llama {
    cfg: LlamaConfig,
    info: ModelInfo,
    embed_tokens: Embedding,
    layers: Vec<Layer>,
    norm: Array,
    lm_head: Linear,
    inv_freq: Array,
    mscale: f32,
    /// Activations dtype (f32 on the CPU: exact against the references).
    act: DType,
}

impl Llama {
    pub fn load(cfg: LlamaConfig, w: &Weights, info: ModelInfo) -> Result<Self> {
        validate(&cfg)?;
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let m = w.pp("model");
        let embed = m
            .pp("embed_tokens")
            .tensor("weight", &[cfg.vocab_size, h])?;
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let b = cfg.attention_bias;
            let q = Linear::load(&a.pp("q_proj"), h, nq * d, b)?;
            let k = Linear::load(&a.pp("k_proj"), h, nkv * d, b)?;
            let v = Linear::load(&a.pp("v_proj"), h, nkv * d, b)?;
            let self_attn = Attention {
                qkv_proj: Linear::fuse(&[&q, &k, &v])?,
                o_proj: Linear::load(&a.pp("o_proj"), nq * d, h, false)?,
                q_norm: if cfg.qk_norm {
                    Some(a.pp("q_norm").dense("weight", &[d])?)
                } else {
                    None
                },
                k_norm: if cfg.qk_norm {
                    Some(a.pp("k_norm").dense("weight", &[d])?)
                } else {
                    None
                },
            };
            let p = l.pp("mlp");
            let ff = cfg.intermediate_size;
            layers.push(Layer {
                input_layernorm: l.pp("input_layernorm").dense("weight", &[h])?,
                self_attn,
                post_attention_layernorm: l.pp("post_attention_layernorm").dense("weight", &[h])?,
                mlp: Mlp {
                    gate_up_proj: Linear::fuse(&[
                        &Linear::load(&p.pp("gate_proj"), h, ff, false)?,
                        &Linear::load(&p.pp("up_proj"), h, ff, false)?,
                    ])?,
                    down_proj: Linear::load(&p.pp("down_proj"), ff, h, false)?,
                },
            });
        }
        let lm_head = match w.pp("lm_head").get_opt("weight")? {
            Some(_) if !cfg.tie_word_embeddings => {
                Linear::load(&w.pp("lm_head"), h, cfg.vocab_size, false)?
            }
            _ => Linear::from_tensor(embed.clone(), None),
        };
        let (inv_freq, mscale) = cfg.rope_scaling.tables(cfg.rope_theta, d)?;
        Ok(Llama {
            norm: m.pp("norm").dense("weight", &[h])?,
            embed_tokens: Embedding { table: embed },
            layers,
            lm_head,
            inv_freq,
            mscale,
            act: DType::F32,
            info,
            cfg,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Attention of layer `li` over the packed step: x (ΣT, H) → (ΣT, H).
    fn attention(
        &self,
        a: &Attention,
        x: &Array,
        step: &Packed,
        caches: &mut [&mut ModelCache],
        li: usize,
    ) -> Result<Array> {
        let c = &self.cfg;
        let t = x.dim(0)? as isize;
        let (nq, nkv, d) = (
            c.num_attention_heads as isize,
            c.num_key_value_heads as isize,
            c.head_dim,
        );
        let heads = |y: Array, n: isize, norm: &Option<Array>| -> Result<Array> {
            let y = y.reshape(&[1, t, n, d as isize])?; // (1, ΣT, H, D)
            let y = match norm {
                Some(w) => y.rms_norm(w, c.rms_norm_eps)?,
                None => y,
            };
            y.transpose(&[0, 2, 1, 3]) // (1, H, ΣT, D)
        };
        let qkv = a.qkv_proj.forward(x)?; // (ΣT, (Hq + 2·Hkv)·D)
        let (qe, ke) = ((nq as usize) * d, (nq + nkv) as usize * d);
        let v = heads(qkv.slice_axis(-1, ke, ke + nkv as usize * d)?, nkv, &None)?;
        let pos = &step.positions;
        let rope = |y: &Array| y.rope(c.rope_layout, d, &self.inv_freq, self.mscale, pos);
        let (q, k) = if a.q_norm.is_none() && a.k_norm.is_none() {
            // q and k rotate by the same positions: one RoPE over all their heads (one kernel,
            // not two), then q is the first Hq heads and k the rest.
            let qk = rope(&heads(qkv.slice_axis(-1, 0, ke)?, nq + nkv, &None)?)?;
            let (nq, nqk) = (nq as usize, (nq + nkv) as usize);
            (qk.slice_axis(1, 0, nq)?, qk.slice_axis(1, nq, nqk)?)
        } else {
            let q = heads(qkv.slice_axis(-1, 0, qe)?, nq, &a.q_norm)?;
            let k = heads(qkv.slice_axis(-1, qe, ke)?, nkv, &a.k_norm)?;
            (rope(&q)?, rope(&k)?)
        };
        let spec = AttendSpec {
            layer: li,
            scale: 1.0 / (d as f32).sqrt(),
            window: c.sliding_window,
            sinks: None,
        };
        let o = step.attend(&q, &k, &v, caches, &spec)?; // (1, Hq, ΣT, D)
        let o = o.transpose(&[0, 2, 1, 3])?.reshape(&[t, nq * d as isize])?; // (ΣT, Hq·D)
        a.o_proj.forward(&o)
    }
}

impl Model for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn make_cache_of(&self, kind: CacheKind) -> Result<ModelCache> {
        let layers = (0..self.cfg.num_hidden_layers)
            .map(|_| layer_cache(kind, self.cfg.sliding_window, self.info.context_length))
            .collect::<Result<_>>()?;
        Ok(ModelCache { layers })
    }

    fn forward_packed(
        &self,
        step: &Packed,
        caches: &mut [&mut ModelCache],
        logits: Logits,
    ) -> Result<Array> {
        let eps = self.cfg.rms_norm_eps;
        let mut x = self.embed_tokens.forward(&step.ids, self.act)?; // (ΣT, H)
        for (li, layer) in self.layers.iter().enumerate() {
            let h = x.rms_norm(&layer.input_layernorm, eps)?;
            x = x.add(&self.attention(&layer.self_attn, &h, step, caches, li)?)?;
            let h = x.rms_norm(&layer.post_attention_layernorm, eps)?;
            let m = &layer.mlp;
            let ff = m.gate_up_proj.forward(&h)?.swiglu()?; // (ΣT, 2·I) → (ΣT, I)
            x = x.add(&m.down_proj.forward(&ff)?)?;
        }
        let x = step.logit_rows(&x, logits)?.rms_norm(&self.norm, eps)?;
        self.lm_head.forward(&x)?.astype(DType::F32)
    }
}

fn validate(c: &LlamaConfig) -> Result<()> {
    let what = format!("{} config", c.architecture);
    let bad = |m: String| Err(Error::format(format!("{what}: {m}")));
    super::check_sizes(
        &what,
        &[
            ("hidden_size", c.hidden_size),
            ("intermediate_size", c.intermediate_size),
            ("num_hidden_layers", c.num_hidden_layers),
            ("num_attention_heads", c.num_attention_heads),
            ("num_key_value_heads", c.num_key_value_heads),
            ("head_dim", c.head_dim),
            ("vocab_size", c.vocab_size),
        ],
    )?;
    super::check_heads(&what, c.num_attention_heads, c.num_key_value_heads)?;
    if c.head_dim == 0 || !c.head_dim.is_multiple_of(2) {
        return bad(format!("expected an even head_dim, found {}", c.head_dim));
    }
    if c.hidden_size == 0 || c.vocab_size == 0 || c.num_hidden_layers == 0 {
        return bad("hidden_size, vocab_size and num_hidden_layers must be positive".into());
    }
    Ok(())
}
