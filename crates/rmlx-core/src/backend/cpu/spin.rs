//! A spinning fork-join pool for the small, back-to-back parallel loops of decode.
//!
//! A decode step of a small model is hundreds of kernels of 5–50 µs each; waking a sleeping
//! rayon worker costs about as much as the work, so two threads ran slower than one. After
//! each job the helpers here spin on an atomic job slot for a short while (no syscalls, ~1 µs
//! to start the next loop, as llama.cpp's threadpool does), then park so that they never
//! compete for cores with rayon's workers during long kernels.
//!
//! Panics: every call of the job runs under `catch_unwind`, on the helpers and on the caller
//! alike, so the caller never unwinds out of `parallel_for` (freeing the closure) while a
//! helper may still call it. After a panic the remaining indices are skipped, the caller waits
//! for the helpers as usual, frees the pool, and resumes the first panic on its own thread.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock};
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
    /// Set when a call of the job panicked: the indices left are skipped.
    failed: AtomicBool,
    /// The first panic's payload, resumed on the caller's thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
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
            failed: AtomicBool::new(false),
            panic: Mutex::new(None),
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
                // SAFETY: `job` points to the caller's `Job` local, set before `live`. The
                // caller clears `live` only after every index is done, then waits for
                // `inside` to reach 0 before it returns (it cannot unwind earlier: `work`
                // catches panics). Our `inside` count was raised before we saw `live` set
                // (all SeqCst), so the caller is still inside `parallel_for` and the
                // reference and the closure behind it are alive until we lower it.
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

/// Takes indices until none is left. A panicking call is caught (the first payload kept for
/// the caller); indices taken after it are counted done without running, so `done` still
/// reaches n and nobody waits forever.
fn work(p: &Pool, f: Job) {
    let n = p.n.load(SeqCst);
    loop {
        let i = p.next.fetch_add(1, SeqCst);
        if i >= n {
            return;
        }
        if !p.failed.load(SeqCst) {
            // The payload is resumed on the caller, which then sees whatever state the
            // closure left: the same contract as a panic in a plain loop.
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(i))) {
                p.failed.store(true, SeqCst);
                let mut slot = p.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(e);
            }
        }
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
/// Falls back to a serial loop when another caller holds the pool. If a call of `f` panics,
/// the indices not yet started are skipped and the panic is resumed here once no helper runs
/// `f` any more; the pool stays usable.
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
    p.failed.store(false, SeqCst);
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
    let panic = p.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    BUSY.store(false, Release);
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
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

    /// A panicking job reaches the caller as that panic, whichever thread ran the index, and
    /// the pool runs later jobs completely (no index lost, no hang, no stale state).
    #[test]
    fn a_panicking_job_reaches_the_caller_and_the_pool_stays_usable() {
        for bad in [0usize, 1, 63, 99] {
            let ran = AtomicUsize::new(0);
            let r = catch_unwind(AssertUnwindSafe(|| {
                parallel_for(100, &|i| {
                    if i == bad {
                        panic!("job {i} failed");
                    }
                    // Slow enough that helpers take indices too.
                    std::thread::sleep(Duration::from_micros(20));
                    ran.fetch_add(1, SeqCst);
                });
            }));
            let payload = r.expect_err("the panic must reach the caller");
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .unwrap_or_default();
            assert_eq!(msg, format!("job {bad} failed"));
            assert!(ran.load(SeqCst) < 100);
            // Every index of the next jobs runs exactly once.
            for n in [2usize, 50, 1000] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                parallel_for(n, &|i| {
                    hits[i].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
            }
        }
        // Every index panicking: helpers and the caller all fail at once.
        let r = catch_unwind(|| parallel_for(64, &|_| panic!("all")));
        assert!(r.is_err());
        let hits: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        parallel_for(64, &|i| {
            hits[i].fetch_add(1, SeqCst);
        });
        assert!(hits.iter().all(|h| h.load(SeqCst) == 1));
    }
}
