//! A cache of freed host buffers, as MLX's allocator keeps one: a decode step frees and
//! re-allocates the same few hundred buffer sizes every token, and asking the system
//! allocator each time costs page faults (fresh pages zeroed by the kernel, 2 MB at a time
//! with transparent huge pages) and allocator bookkeeping on the thread that runs the graph.
//! Freed buffers wait here by exact size (a step's sizes repeat exactly) up to a byte limit;
//! past it they go back to the system.

use crate::buffer::Line;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes the cache may hold unless `set_limit` says otherwise (`RMLX_BUFFER_CACHE_MB`).
const DEFAULT_LIMIT: usize = 256 << 20;

struct Cache {
    /// Free buffers by length in lines.
    free: HashMap<usize, Vec<Vec<Line>>>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
/// usize::MAX: not read from the environment yet.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

fn limit() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        usize::MAX => {
            let l = std::env::var("RMLX_BUFFER_CACHE_MB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .map_or(DEFAULT_LIMIT, |mb| mb << 20);
            LIMIT.store(l, Ordering::Relaxed);
            l
        }
        l => l,
    }
}

/// Sets the most bytes of freed buffers kept for reuse (0 disables the cache) and frees what
/// is over it.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes.min(usize::MAX - 1), Ordering::Relaxed);
    trim(bytes);
}

/// Returns every cached buffer to the system.
pub fn clear() {
    trim(0);
}

/// Bytes held by the cache now.
pub fn cached_bytes() -> usize {
    lock().as_ref().map_or(0, |c| c.bytes)
}

fn lock() -> std::sync::MutexGuard<'static, Option<Cache>> {
    // A panic while holding the lock leaves the map consistent (every step is one push/pop).
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

fn trim(to: usize) {
    let mut g = lock();
    let Some(c) = g.as_mut() else { return };
    let mut dropped = Vec::new();
    for list in c.free.values_mut() {
        while c.bytes > to {
            match list.pop() {
                Some(v) => {
                    c.bytes -= v.len() * 64;
                    dropped.push(v);
                }
                None => break,
            }
        }
    }
    c.free.retain(|_, l| !l.is_empty());
    drop(g);
    drop(dropped); // freed outside the lock
}

/// A cached buffer of exactly `n` lines, zero-filled, if one is free.
pub(crate) fn take_zeroed(n: usize) -> Option<Vec<Line>> {
    if n == 0 {
        return None;
    }
    let mut v = {
        let mut g = lock();
        let c = g.as_mut()?;
        let v = c.free.get_mut(&n)?.pop()?;
        c.bytes -= n * 64;
        v
    };
    v.fill(Line([0; 64]));
    Some(v)
}

/// Keeps a freed buffer for reuse if it fits under the limit; otherwise frees it.
pub(crate) fn give(v: Vec<Line>) {
    let bytes = v.len() * 64;
    // A buffer over a quarter of the limit would evict everything else for one size.
    if bytes == 0 || v.len() != v.capacity() || bytes > limit() / 4 {
        return;
    }
    let mut g = lock();
    let c = g.get_or_insert_with(|| Cache {
        free: HashMap::new(),
        bytes: 0,
    });
    if c.bytes + bytes > limit() {
        return; // `v` drops after the guard: freed by the system allocator
    }
    c.bytes += bytes;
    c.free.entry(v.len()).or_default().push(v);
}
