//! Read-only file mappings shared by every tensor view cut from them.

use memmap2::Mmap;
use rmlx_core::buffer::SharedBytes;
use rmlx_core::{Error, Result};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Maps `path` read-only and runs `parse` on the mapping. While `parse` runs, the mapping is
/// advised random-access so that reading the header does not make the kernel read ahead
/// megabytes of tensor data (opening a 13 GB model stays instant on a cold cache); normal
/// readahead is restored for the loads that follow. Advice is best effort: failures are
/// ignored. Empty files get an empty buffer (mapping zero bytes fails on some systems) so
/// parsers report "truncated" rather than an OS error.
pub fn map_and_parse<T>(path: &Path, parse: impl FnOnce(SharedBytes) -> Result<T>) -> Result<T> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
        .len();
    if len == 0 {
        return parse(Arc::new(Vec::<u8>::new()));
    }
    // SAFETY: the mapping is read-only; like every mmap-based loader we assume model files are
    // not truncated or rewritten while in use.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| Error::io(format!("mmap {}", path.display()), e))?;
    let map = Arc::new(map);
    advise(&map, true);
    let parsed = parse(map.clone());
    advise(&map, false);
    parsed
}

#[cfg(unix)]
fn advise(map: &Mmap, random: bool) {
    use memmap2::Advice;
    let _ = map.advise(if random {
        Advice::Random
    } else {
        Advice::Normal
    });
}

#[cfg(not(unix))]
fn advise(_: &Mmap, _: bool) {}
