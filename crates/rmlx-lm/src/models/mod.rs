//! One file per `model_type`.

pub mod gpt_oss;
pub mod llama;

use rmlx_core::{Error, Result};

/// Largest size a config may give any dimension (2^31): products of two stay far inside
/// usize, and no real model comes near (vocabularies ~2^18, hidden sizes ~2^14).
pub const MAX_DIM: usize = 1 << 31;

/// Every size below `MAX_DIM`, else an error naming the first that is not.
/// Grouped-query attention needs a positive number of kv heads dividing the query heads.
pub(crate) fn check_heads(what: &str, heads: usize, kv_heads: usize) -> Result<()> {
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(Error::format(format!(
            "{what}: expected attention heads ({heads}) to be a positive multiple of kv heads \
             ({kv_heads})"
        )));
    }
    Ok(())
}

pub(crate) fn check_sizes(what: &str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v >= MAX_DIM) {
        Some((name, v)) => Err(Error::format(format!(
            "{what}: expected {name} below 2^31, found {v}"
        ))),
        None => Ok(()),
    }
}
