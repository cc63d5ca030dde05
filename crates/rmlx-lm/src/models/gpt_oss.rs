//! GPT-OSS (openai/gpt-oss-20b, -120b): biased q/k/v/o projections, GQA, a learned sink logit per
//! head, sliding-window (even) and full (odd) layers, YaRN RoPE, a top-k router with softmax
//! over the selected logits, MXFP4 experts computed from packed blocks with the clamped SwiGLU
//! (alpha 1.702, `+1` on up) over interleaved gate/up rows. Hugging Face names.

use crate::batch::{AttendSpec, Packed};
use crate::cache::{layer_cache, CacheKind, ModelCache};
use crate::layers::{f32_leaf, Embedding, Linear};
use crate::model::{Logits, Model, ModelInfo};
use crate::weights::{Tensor, Weights};
use rmlx_core::compile::{compile, Compiled};
use rmlx_core::ops::RopeScaling;
use rmlx_core::primitive::RopeLayout;
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, DType, Error, Result};

#[derive(Clone, Debug)]
pub struct GptOssConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub num_local_experts: usize,
    pub experts_per_token: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub sliding_window: usize,
    /// Per layer: true for sliding-window attention.
    pub sliding: Vec<bool>,
    pub swiglu_limit: f32,
    pub max_position_embeddings: usize,
}

const ALPHA: f32 = 1.702;

struct Attention {
    /// q, k and v projections fused: outputs (T, (Hq + 2·Hkv)·D).
    qkv_proj: Linear,
    /// x + o_proj(o), compiled: the projection's bias and the residual add are one kernel.
    o_proj_residual: Compiled<BlockFn>,
    /// f32 (converted once at load).
    sinks: Array,
}

struct Experts {
    gate_up_proj: QuantizedWeight, // (E, 2I, H)
    gate_up_proj_bias: Array,      // (E, 2I) f32
    down_proj: QuantizedWeight,    // (E, H, I)
    down_proj_bias: Array,         // (E, H) f32
}

/// The feed-forward half of a layer: x + moe(rms_norm(x)).
struct MoeBlock {
    norm: Array,
    router: Linear,
    experts: Experts,
    eps: f32,
    experts_per_token: usize,
    swiglu_limit: f32,
}

type BlockFn = Box<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;

struct Layer {
    input_layernorm: Array,
    self_attn: Attention,
    /// `MoeBlock::forward`, compiled: traced once per input shape, its elementwise runs fused
    /// (the biases, clamps and gates of the activation become one kernel).
    moe: Compiled<BlockFn>,
}

pub struct GptOss {
    cfg: GptOssConfig,
    info: ModelInfo,
    embed_tokens: Embedding,
    layers: Vec<Layer>,
    norm: Array,
    lm_head: Linear,
    inv_freq: Array,
    mscale: f32,
}

fn quantized(w: &Weights, leaf: &str, shape: &[usize]) -> Result<QuantizedWeight> {
    match w.tensor(leaf, shape)? {
        Tensor::Quantized(q) => Ok(q),
        Tensor::Dense(_) => Err(Error::format(format!(
            "gpt_oss: tensor `{}` expected MXFP4 blocks and scales, found a plain tensor",
            w.name(leaf)
        ))),
    }
}

impl GptOss {
    pub fn load(cfg: GptOssConfig, w: &Weights, info: ModelInfo) -> Result<Self> {
        validate(&cfg)?;
        let (h, d, e, i) = (
            cfg.hidden_size,
            cfg.head_dim,
            cfg.num_local_experts,
            cfg.intermediate_size,
        );
        let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let m = w.pp("model");
        let embed = m
            .pp("embed_tokens")
            .tensor("weight", &[cfg.vocab_size, h])?;
        let mut layers = Vec::new();
        for li in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(li);
            let a = l.pp("self_attn");
            let x = l.pp("mlp").pp("experts");
            layers.push(Layer {
                input_layernorm: l.pp("input_layernorm").dense("weight", &[h])?,
                self_attn: Attention {
                    qkv_proj: Linear::fuse(&[
                        &Linear::load(&a.pp("q_proj"), h, nq * d, true)?,
                        &Linear::load(&a.pp("k_proj"), h, nkv * d, true)?,
                        &Linear::load(&a.pp("v_proj"), h, nkv * d, true)?,
                    ])?,
                    o_proj_residual: residual(Linear::load(&a.pp("o_proj"), nq * d, h, true)?),
                    sinks: f32_leaf(a.dense("sinks", &[nq])?)?,
                },
                moe: MoeBlock {
                    norm: l.pp("post_attention_layernorm").dense("weight", &[h])?,
                    router: Linear::load(&l.pp("mlp").pp("router"), h, e, true)?,
                    eps: cfg.rms_norm_eps,
                    experts_per_token: cfg.experts_per_token,
                    swiglu_limit: cfg.swiglu_limit,
                    experts: Experts {
                        gate_up_proj: quantized(&x, "gate_up_proj", &[e, 2 * i, h])?,
                        gate_up_proj_bias: f32_leaf(x.dense("gate_up_proj_bias", &[e, 2 * i])?)?,
                        down_proj: quantized(&x, "down_proj", &[e, h, i])?,
                        down_proj_bias: f32_leaf(x.dense("down_proj_bias", &[e, h])?)?,
                    },
                }
                .compiled(),
            });
        }
        let (inv_freq, mscale) = cfg.rope_scaling.tables(cfg.rope_theta, d)?;
        Ok(GptOss {
            norm: m.pp("norm").dense("weight", &[h])?,
            lm_head: Linear::load(&w.pp("lm_head"), h, cfg.vocab_size, false)?,
            embed_tokens: Embedding { table: embed },
            layers,
            inv_freq,
            mscale,
            info,
            cfg,
        })
    }

    /// Attention of layer `li` over the packed step, before the output projection:
    /// x (ΣT, H) → (ΣT, Hq·D).
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
        let d = c.head_dim;
        let heads = |y: Array, n: usize| {
            y.reshape(&[1, t, n as isize, d as isize])?
                .transpose(&[0, 2, 1, 3])
        }; // (1, H, ΣT, D)
        let (nq, nkv) = (c.num_attention_heads, c.num_key_value_heads);
        let qkv = a.qkv_proj.forward(x)?; // (ΣT, (Hq + 2·Hkv)·D)
        let ke = (nq + nkv) * d;
        let v = heads(qkv.slice_axis(-1, ke, ke + nkv * d)?, nkv)?;
        let pos = &step.positions;
        // q and k rotate by the same positions: one RoPE over all their heads (one kernel, not
        // two), then q is the first Hq heads and k the rest.
        let qk = heads(qkv.slice_axis(-1, 0, ke)?, nq + nkv)?.rope(
            RopeLayout::HalfSplit,
            d,
            &self.inv_freq,
            self.mscale,
            pos,
        )?;
        let (q, k) = (qk.slice_axis(1, 0, nq)?, qk.slice_axis(1, nq, nq + nkv)?);
        let spec = AttendSpec {
            layer: li,
            scale: 1.0 / (d as f32).sqrt(),
            window: c.sliding[li].then_some(c.sliding_window),
            sinks: Some(&a.sinks),
        };
        let o = step.attend(&q, &k, &v, caches, &spec)?; // (1, Hq, ΣT, D)
        o.transpose(&[0, 2, 1, 3])?
            .reshape(&[t, (c.num_attention_heads * d) as isize]) // (ΣT, Hq·D)
    }
}

/// x + proj(o) as a compiled function of (x, o).
fn residual(proj: Linear) -> Compiled<BlockFn> {
    compile(Box::new(move |xs: &[Array]| Ok(vec![xs[0].add(&proj.forward(&xs[1])?)?])) as BlockFn)
}

impl MoeBlock {
    /// The block as a compiled function of x (its weights are the trace's constants).
    fn compiled(self) -> Compiled<BlockFn> {
        let block = std::sync::Arc::new(self);
        compile(Box::new(move |xs: &[Array]| Ok(vec![block.forward(&xs[0])?])) as BlockFn)
    }

    /// x + moe(rms_norm(x)): (T, H) → (T, H).
    fn forward(&self, x: &Array) -> Result<Array> {
        let h = x.rms_norm(&self.norm, self.eps)?;
        x.add(&self.moe(&h)?)
    }

    /// Mixture of experts: (T, H) → (T, H).
    fn moe(&self, x: &Array) -> Result<Array> {
        let k = self.experts_per_token;
        let limit = self.swiglu_limit;
        let logits = self.router.forward(x)?; // (T, E)
        let idx = logits.topk_indices(k)?; // (T, k), largest first
        let weights = logits.take_along_axis(&idx, -1)?.softmax(-1)?; // (T, k)
        let ex = &self.experts;
        let gate_up = ex.gate_up_proj.gather_qmm(x, &idx)?; // (T, k, 2I)
        let bias = ex.gate_up_proj_bias.take(&idx, 0)?; // (T, k, 2I)
        let n2 = gate_up.dim(-1)?;
        let (t, kk) = (gate_up.dim(0)?, gate_up.dim(1)?);
        // Gate and up rows interleave; each takes its bias rows the same way. Slicing before
        // the bias add (the same sums) leaves one elementwise run for `compile` to fuse.
        let rows = |a: &Array, first: usize| a.slice(&[0, 0, first], &[t, kk, n2], &[1, 1, 2]);
        let gate = rows(&gate_up, 0)?
            .add(&rows(&bias, 0)?)?
            .clip(None, Some(limit))?;
        let up = rows(&gate_up, 1)?
            .add(&rows(&bias, 1)?)?
            .clip(Some(-limit), Some(limit))?;
        let glu = gate.mul(&gate.mul_scalar(ALPHA)?.sigmoid()?)?;
        let act = up.add_scalar(1.0)?.mul(&glu)?; // (T, k, I)
        let down = ex
            .down_proj
            .gather_qmm(&act, &idx)?
            .add(&ex.down_proj_bias.take(&idx, 0)?)?; // (T, k, H)
        down.mul(&weights.expand_dims(-1)?)?.sum(&[1], false)
    }
}

impl Model for GptOss {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn make_cache_of(&self, kind: CacheKind) -> Result<ModelCache> {
        let context = self.info.context_length;
        let layers = self
            .cfg
            .sliding
            .iter()
            .map(|&s| layer_cache(kind, s.then_some(self.cfg.sliding_window), context))
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
        let mut x = self.embed_tokens.forward(&step.ids, DType::F32)?; // (ΣT, H)
        for (li, layer) in self.layers.iter().enumerate() {
            let h = x.rms_norm(&layer.input_layernorm, eps)?;
            let attn = &layer.self_attn;
            let o = self.attention(attn, &h, step, caches, li)?;
            x = attn.o_proj_residual.call(&[x, o])?.remove(0);
            x = layer.moe.call(&[x])?.remove(0);
        }
        let x = step.logit_rows(&x, logits)?.rms_norm(&self.norm, eps)?;
        self.lm_head.forward(&x)?.astype(DType::F32)
    }
}

fn validate(c: &GptOssConfig) -> Result<()> {
    let bad = |m: String| Err(Error::format(format!("gpt_oss config: {m}")));
    super::check_sizes(
        "gpt_oss config",
        &[
            ("hidden_size", c.hidden_size),
            ("intermediate_size", c.intermediate_size),
            ("num_hidden_layers", c.num_hidden_layers),
            ("num_attention_heads", c.num_attention_heads),
            ("num_key_value_heads", c.num_key_value_heads),
            ("head_dim", c.head_dim),
            ("vocab_size", c.vocab_size),
            ("num_local_experts", c.num_local_experts),
        ],
    )?;
    super::check_heads(
        "gpt_oss config",
        c.num_attention_heads,
        c.num_key_value_heads,
    )?;
    if c.experts_per_token == 0 || c.experts_per_token > c.num_local_experts {
        return bad(format!(
            "expected 1 <= experts_per_token <= num_local_experts ({}), found {}",
            c.num_local_experts, c.experts_per_token
        ));
    }
    if c.sliding.len() != c.num_hidden_layers {
        return bad(format!(
            "expected {} layer_types, found {}",
            c.num_hidden_layers,
            c.sliding.len()
        ));
    }
    if c.sliding_window == 0 || !c.head_dim.is_multiple_of(2) {
        return bad("expected a positive sliding_window and an even head_dim".into());
    }
    Ok(())
}
