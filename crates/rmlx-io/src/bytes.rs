//! Read-only file mappings shared by every tensor view cut from them.

use memmap2::Mmap;
use rmlx_core::buffer::SharedBytes;
use rmlx_core::{Error, Result};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Maps `path` read-only. Empty files get an empty buffer (mapping zero bytes fails on some
/// systems) so parsers report "truncated" rather than an OS error.
pub fn map_file(path: &Path) -> Result<SharedBytes> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
        .len();
    if len == 0 {
        return Ok(Arc::new(Vec::<u8>::new()));
    }
    // SAFETY: the mapping is read-only; like every mmap-based loader we assume model files are
    // not truncated or rewritten while in use.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| Error::io(format!("mmap {}", path.display()), e))?;
    Ok(Arc::new(map))
}
