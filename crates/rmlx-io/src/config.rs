//! `config.json` of a Hugging Face / MLX model directory: the raw JSON plus the few things the
//! loader itself needs normalized (architecture, RoPE, quantization).

use rmlx_core::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub value: Value,
}

/// RoPE base frequency and scaling, the same whether the config uses transformers 4.x keys
/// (`rope_theta`, `rope_scaling`) or 5.x (`rope_parameters`).
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    pub theta: f64,
    pub scaling: RopeScaling,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    Yarn {
        factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original_max_position_embeddings: usize,
        /// transformers' default is true; gpt-oss sets false.
        truncate: bool,
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
        attention_factor: Option<f64>,
    },
}

/// Quantization declared in config.json: MLX's `quantization` (mode, bits, group size, with
/// optional per-layer overrides) or Hugging Face's `quantization_config` (e.g.
/// `quant_method: mxfp4`, whose tensors are recognized by name instead).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizationConfig {
    /// The Hugging Face `quant_method`, else the MLX `mode` ("affine" when absent).
    pub method: String,
    /// MLX's model-wide parameters, when given.
    pub default: Option<QuantParams>,
    /// MLX per-layer entries: layer prefix → parameters, or None when left unquantized.
    pub per_layer: BTreeMap<String, Option<QuantParams>>,
}

/// One MLX quantization setting: `mode` is "affine" (scales and biases) or "mxfp4" (E8M0
/// scales, no biases); others (e.g. "nvfp4") are reported but not grouped.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    pub mode: String,
    pub bits: u8,
    pub group_size: u16,
}

impl QuantizationConfig {
    /// Parameters for the module at `prefix` (e.g. `model.layers.0.mlp.gate_proj`).
    pub fn params_for(&self, prefix: &str) -> Option<&QuantParams> {
        match self.per_layer.get(prefix) {
            Some(p) => p.as_ref(),
            None => self.default.as_ref(),
        }
    }
}

fn num(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::format(format!("{ctx}: '{key}': expected a number, found {v}"))),
    }
}

fn req(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<f64> {
    num(obj, key, ctx)?.ok_or_else(|| Error::format(format!("{ctx}: missing '{key}'")))
}

fn int(v: f64, key: &str, ctx: &str) -> Result<usize> {
    if v >= 0.0 && v.fract() == 0.0 && v <= usize::MAX as f64 {
        Ok(v as usize)
    } else {
        Err(Error::format(format!(
            "{ctx}: '{key}': expected a non-negative integer, found {v}"
        )))
    }
}

impl ModelConfig {
    /// Loads `dir/config.json`; a directory without one is an error naming the directory.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(Error::format(format!(
                "config: expected a config.json in {}, found none",
                dir.display()
            )));
        }
        Self::load(path)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("config: reading {}", path.display()), e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self> {
        let path = path.into();
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::format(format!("config {}: invalid JSON: {e}", path.display())))?;
        if !value.is_object() {
            return Err(Error::format(format!(
                "config {}: expected a JSON object, found {}",
                path.display(),
                kind(&value)
            )));
        }
        Ok(ModelConfig { path, value })
    }

    fn ctx(&self) -> String {
        format!("config {}", self.path.display())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key)
    }

    pub fn model_type(&self) -> Option<&str> {
        self.get("model_type").and_then(Value::as_str)
    }

    pub fn architectures(&self) -> Vec<&str> {
        self.get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `model_type`, else the first of `architectures`.
    pub fn architecture(&self) -> Option<&str> {
        self.model_type()
            .or_else(|| self.architectures().first().copied())
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let obj = self
            .value
            .as_object()
            .ok_or_else(|| Error::format(self.ctx()))?;
        req(obj, key, &self.ctx())
    }

    pub fn get_usize(&self, key: &str) -> Result<usize> {
        int(self.get_f64(key)?, key, &self.ctx())
    }

    pub fn get_usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.get_usize(key),
        }
    }

    pub fn get_f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.get_f64(key),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(Error::format(format!(
                "{}: '{key}': expected a string, found {}",
                self.ctx(),
                kind(v)
            ))),
            None => Err(Error::format(format!("{}: missing '{key}'", self.ctx()))),
        }
    }

    /// RoPE settings from either transformers layout; θ defaults to 10000.
    pub fn rope(&self) -> Result<RopeConfig> {
        let ctx = self.ctx();
        let top = self
            .value
            .as_object()
            .ok_or_else(|| Error::format(ctx.clone()))?;
        let (params, pctx) = match (top.get("rope_parameters"), top.get("rope_scaling")) {
            (Some(Value::Object(p)), _) => (Some(p), format!("{ctx}: rope_parameters")),
            (_, Some(Value::Object(p))) => (Some(p), format!("{ctx}: rope_scaling")),
            (_, None | Some(Value::Null)) => (None, ctx.clone()),
            (_, Some(v)) => {
                return Err(Error::format(format!(
                    "{ctx}: rope_scaling: expected an object or null, found {}",
                    kind(v)
                )))
            }
        };
        let theta = match params
            .map(|p| num(p, "rope_theta", &pctx))
            .transpose()?
            .flatten()
        {
            Some(t) => t,
            None => num(top, "rope_theta", &ctx)?.unwrap_or(10000.0),
        };
        let Some(p) = params else {
            return Ok(RopeConfig {
                theta,
                scaling: RopeScaling::None,
            });
        };
        let rope_type = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(Value::as_str);
        let orig = |p: &Map<String, Value>| -> Result<usize> {
            let v = match num(p, "original_max_position_embeddings", &pctx)? {
                Some(v) => v,
                None => req(top, "max_position_embeddings", &ctx)?,
            };
            int(v, "original_max_position_embeddings", &pctx)
        };
        let scaling = match rope_type.unwrap_or("default") {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: req(p, "factor", &pctx)?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: req(p, "factor", &pctx)?,
                low_freq_factor: req(p, "low_freq_factor", &pctx)?,
                high_freq_factor: req(p, "high_freq_factor", &pctx)?,
                original_max_position_embeddings: int(
                    req(p, "original_max_position_embeddings", &pctx)?,
                    "original_max_position_embeddings",
                    &pctx,
                )?,
            },
            "yarn" => RopeScaling::Yarn {
                factor: req(p, "factor", &pctx)?,
                beta_fast: num(p, "beta_fast", &pctx)?.unwrap_or(32.0),
                beta_slow: num(p, "beta_slow", &pctx)?.unwrap_or(1.0),
                original_max_position_embeddings: orig(p)?,
                truncate: match p.get("truncate") {
                    None | Some(Value::Null) => true,
                    Some(Value::Bool(b)) => *b,
                    Some(v) => {
                        return Err(Error::format(format!(
                            "{pctx}: 'truncate': expected a bool, found {v}"
                        )))
                    }
                },
                mscale: num(p, "mscale", &pctx)?,
                mscale_all_dim: num(p, "mscale_all_dim", &pctx)?,
                attention_factor: num(p, "attention_factor", &pctx)?,
            },
            other => {
                return Err(Error::format(format!(
                    "{pctx}: expected rope_type default, linear, llama3 or yarn, found '{other}'"
                )))
            }
        };
        Ok(RopeConfig { theta, scaling })
    }

    /// `quantization` (MLX) or `quantization_config` (MLX copy, or Hugging Face).
    pub fn quantization(&self) -> Result<Option<QuantizationConfig>> {
        let ctx = self.ctx();
        let (q, key) = match (self.get("quantization"), self.get("quantization_config")) {
            (Some(Value::Object(q)), _) => (q, "quantization"),
            (_, Some(Value::Object(q))) => (q, "quantization_config"),
            _ => return Ok(None),
        };
        let qctx = format!("{ctx}: {key}");
        let mode_of = |o: &Map<String, Value>, default: &str| {
            o.get("mode")
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let params = |o: &Map<String, Value>,
                      c: &str,
                      mode: String|
         -> Result<Option<QuantParams>> {
            match (num(o, "bits", c)?, num(o, "group_size", c)?) {
                (Some(b), Some(g)) => {
                    let b = int(b, "bits", c)?;
                    let g = int(g, "group_size", c)?;
                    if !matches!(b, 2..=8) || g == 0 || g > u16::MAX as usize {
                        return Err(Error::format(format!(
                            "{c}: expected bits in 2..=8 and group_size in 1..=65535, found bits {b}, group_size {g}"
                        )));
                    }
                    Ok(Some(QuantParams {
                        mode,
                        bits: b as u8,
                        group_size: g as u16,
                    }))
                }
                _ => Ok(None),
            }
        };
        let top_mode = mode_of(q, "affine");
        let default = params(q, &qctx, top_mode.clone())?;
        let mut per_layer = BTreeMap::new();
        for (k, v) in q {
            match v {
                Value::Bool(false) => {
                    per_layer.insert(k.clone(), None);
                }
                Value::Object(o) => {
                    let c = format!("{qctx}: '{k}'");
                    if let Some(p) = params(o, &c, mode_of(o, &top_mode))? {
                        per_layer.insert(k.clone(), Some(p));
                    }
                }
                _ => {}
            }
        }
        let method = match q.get("quant_method").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None if default.is_some() || !per_layer.is_empty() => top_mode,
            None => "unknown".to_string(),
        };
        Ok(Some(QuantizationConfig {
            method,
            default,
            per_layer,
        }))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
