//! Per-primitive time accounting for `eval`, off by default: `rmlx bench --profile` turns it
//! on to show where decode time goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<Option<HashMap<String, (u64, Duration)>>> = Mutex::new(None);

pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn record(name: String, d: Duration) {
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let e = t.get_or_insert_with(HashMap::new).entry(name).or_default();
    e.0 += 1;
    e.1 += d;
}

/// (primitive, calls, total time), most expensive first; clears the table. Waits for the
/// GPUs that timed ops on their queues.
pub fn take() -> crate::Result<Vec<(String, u64, Duration)>> {
    crate::backend::flush_spans()?;
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let mut v: Vec<_> = t
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (n, d))| (k, n, d))
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.2));
    Ok(v)
}

/// `take`'s rows summed by primitive (the label's first word): (primitive, calls, seconds),
/// most expensive first.
pub fn families(rows: &[(String, u64, Duration)]) -> Vec<(String, u64, f64)> {
    let mut families: Vec<(String, u64, f64)> = Vec::new();
    for (name, n, d) in rows {
        let family = name.split(' ').next().unwrap_or(name);
        match families.iter_mut().find(|f| f.0 == family) {
            Some(f) => {
                f.1 += n;
                f.2 += d.as_secs_f64();
            }
            None => families.push((family.to_string(), *n, d.as_secs_f64())),
        }
    }
    families.sort_by(|a, b| b.2.total_cmp(&a.2));
    families
}
