//! A spinning fork-join pool for the small, back-to-back parallel loops of decode.
//!
//! A decode step of a small model is hundreds of kernels of 5–50 µs each; waking a sleeping
//! rayon worker costs about as much as the work, so two threads ran slower than one. After
//! each job the helpers here spin on an atomic job slot for a short while (no syscalls, ~1 µs
//! to start the next loop, as llama.cpp's threadpool does), then park so that they never
//! compete for cores with rayon's workers during long kernels.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

struct Pool {
    helpers: Vec<Thread>,
    /// Incremented to publish a job.
    epoch: AtomicUsize,
    /// Thin pointer to the caller's `&dyn Fn(usize)` (valid while `live`).
    job: AtomicUsize,
    n: AtomicUsize,
    next: AtomicUsize,
    done: AtomicUsize,
    live: AtomicBool,
    /// Helpers currently looking at the job slot.
    inside: AtomicUsize,
    /// Helpers parked (asleep); a new job wakes them.
    parked: AtomicUsize,
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

static POOL: OnceLock<Pool> = OnceLock::new();
/// Serializes callers: one job in the slot at a time (rayon tasks may call in parallel).
static BUSY: AtomicBool = AtomicBool::new(false);

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let n = rayon::current_num_threads().saturating_sub(1);
        let helpers = (0..n)
            .map(|i| {
                thread::Builder::new()
                    .name(format!("rmlx-spin-{i}"))
                    .spawn(helper_loop)
                    .expect("spawn spin helper")
                    .thread()
                    .clone()
            })
            .collect();
        Pool {
            helpers,
            epoch: AtomicUsize::new(0),
            job: AtomicUsize::new(0),
            n: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            live: AtomicBool::new(false),
            inside: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
        }
    })
}

fn helper_loop() {
    // The pool is initialized by the thread that spawned us; wait until it is visible.
    let p = loop {
        if let Some(p) = POOL.get() {
            break p;
        }
        thread::sleep(Duration::from_micros(50));
    };
    let mut seen = 0;
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = p.epoch.load(Acquire);
        if e != seen {
            seen = e;
            p.inside.fetch_add(1, SeqCst);
            if p.live.load(SeqCst) && p.epoch.load(SeqCst) == e {
                // SAFETY: `live` and our `inside` count keep the caller inside `parallel_for`,
                // so the closure it points to is alive.
                let f: Job = unsafe { *(p.job.load(SeqCst) as *const Job) };
                work(p, f);
            }
            p.inside.fetch_sub(1, SeqCst);
            idle_since = Instant::now();
            continue;
        }
        // The clock is read once per 64 spins: a read costs more than a spin.
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            p.parked.fetch_add(1, SeqCst);
            // Re-check after announcing: a job published in between must not be missed.
            if p.epoch.load(SeqCst) == seen {
                thread::park_timeout(Duration::from_millis(50));
            }
            p.parked.fetch_sub(1, SeqCst);
            idle_since = Instant::now();
        }
    }
}

fn work(p: &Pool, f: Job) {
    let n = p.n.load(SeqCst);
    loop {
        let i = p.next.fetch_add(1, SeqCst);
        if i >= n {
            return;
        }
        f(i);
        p.done.fetch_add(1, SeqCst);
    }
}

/// How long a helper keeps spinning after its last job: longer than the gaps between the
/// kernels of a decode step, far shorter than a token.
const SPIN: Duration = Duration::from_micros(100);

pub fn threads() -> usize {
    pool().helpers.len() + 1
}

/// Runs `f(0..n)` on the calling thread and the spinning helpers; returns when all are done.
/// Falls back to a serial loop when another caller holds the pool.
pub fn parallel_for(n: usize, f: &(dyn Fn(usize) + Sync)) {
    let p = pool();
    if n <= 1 || p.helpers.is_empty() || BUSY.swap(true, Acquire) {
        (0..n).for_each(f);
        return;
    }
    let fref: Job = f;
    p.n.store(n, SeqCst);
    p.next.store(0, SeqCst);
    p.done.store(0, SeqCst);
    p.job.store(&fref as *const Job as usize, SeqCst);
    p.live.store(true, SeqCst);
    p.epoch.fetch_add(1, SeqCst);
    if p.parked.load(SeqCst) > 0 {
        p.helpers.iter().for_each(|t| t.unpark());
    }
    work(p, fref);
    while p.done.load(SeqCst) < n {
        std::hint::spin_loop();
    }
    p.live.store(false, SeqCst);
    while p.inside.load(SeqCst) != 0 {
        std::hint::spin_loop();
    }
    BUSY.store(false, Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_exactly_once() {
        for n in [0usize, 1, 2, 7, 100, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            parallel_for(n, &|i| {
                hits[i].fetch_add(1, SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
        }
    }
}
