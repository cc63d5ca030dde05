//! One file per `model_type`.

pub mod gpt_oss;
pub mod llama;
