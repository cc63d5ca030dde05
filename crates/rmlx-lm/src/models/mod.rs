//! One file per `model_type`.

pub mod gpt_oss;
pub mod llama;

use rmlx_core::{Error, Result};

/// Largest size a config may give any dimension (2^31): products of two stay far inside
/// usize, and no real model comes near (vocabularies ~2^18, hidden sizes ~2^14).
pub const MAX_DIM: usize = 1 << 31;

/// Every size below `MAX_DIM`, else an error naming the first that is not.
pub(crate) fn check_sizes(what: &str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v >= MAX_DIM) {
        Some((name, v)) => Err(Error::format(format!(
            "{what}: expected {name} below 2^31, found {v}"
        ))),
        None => Ok(()),
    }
}
