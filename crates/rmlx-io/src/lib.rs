//! rmlx-io: model files mapped to lazy arrays without copying.
//!
//! Every parser works on a byte slice (so it can be fuzzed) and validates sizes and offsets
//! against the real length of the input before trusting them; files are memory-mapped and
//! tensors become zero-copy views into the mapping.

pub mod bytes;
pub mod config;
pub mod gguf;
pub mod model_files;
pub mod quantized;
pub mod safetensors;
pub mod sharded;
pub mod tensor;

pub use config::{ModelConfig, QuantizationConfig, RopeConfig, RopeScaling};
pub use gguf::{GgufFile, MetaValue, Metadata};
pub use model_files::{Format, ModelFiles};
pub use safetensors::SafetensorsFile;
pub use sharded::SafetensorsSet;
pub use tensor::{QuantizedTensor, TensorInfo, TensorType};
