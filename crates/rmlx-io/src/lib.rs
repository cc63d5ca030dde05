//! rmlx-io: model files mapped to lazy arrays without copying.
//!
//! Every parser works on a byte slice (so it can be fuzzed) and validates sizes and offsets
//! against the real length of the input before trusting them; files are memory-mapped and
//! tensors become zero-copy views into the mapping.
//!
//! ```no_run
//! # fn main() -> rmlx_core::Result<()> {
//! let m = rmlx_io::ModelFiles::open("/models/gpt-oss-20b")?; // a directory, .gguf or .safetensors
//! let embed = m.get("model.embed_tokens.weight")?; // plain tensor, zero-copy
//! let experts = m.get_quantized("model.layers.0.mlp.experts.gate_up_proj")?; // MXFP4 (E, rows, K)
//! let rope = m.config().map(|c| c.rope()).transpose()?;
//! if let Some(g) = m.gguf() {
//!     let tokens = g.metadata().get_str_array("tokenizer.ggml.tokens")?;
//! }
//! # Ok(())
//! # }
//! ```

// Every unsafe block states why it is sound and every unsafe fn what its callers must
// establish (docs/SAFETY.md); clippy enforces the comments, review their truth.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod bytes;
pub mod config;
pub mod gguf;
pub mod model_files;
pub mod quantized;
pub mod safetensors;
pub mod sharded;
pub mod tensor;

pub use config::{ModelConfig, QuantParams, QuantizationConfig, RopeConfig, RopeScaling};
pub use gguf::{GgufFile, MetaValue, Metadata};
pub use model_files::{Format, ModelFiles};
pub use safetensors::SafetensorsFile;
pub use sharded::SafetensorsSet;
pub use tensor::{QuantizedTensor, TensorInfo, TensorType};
