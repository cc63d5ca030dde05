//! Devices, streams and the default device. A buffer lives on one device; an array may be used
//! on any device: `eval` moves an input to its consumer's device once and keeps the copy on the
//! input (unified memory model).
//!
//! Where an op runs: on the first of its inputs that lives on a GPU, else on the default device
//! (so `model.to(cuda)` pulls a model's computation onto the GPU, and plain arrays follow the
//! default). New arrays made from host data belong to the default device and are uploaded on
//! first use there. The default is the CPU until `set_default_device` (process-wide) or
//! `with_default_device` (this thread, for a closure) says otherwise; `Device::auto()` picks the
//! first usable CUDA device, else the CPU.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// NVIDIA GPU by ordinal (backend not built yet; the interface is written for it).
    Cuda(usize),
    /// wgpu adapter by ordinal (Metal, Vulkan).
    Gpu(usize),
}

impl Device {
    pub fn is_cpu(self) -> bool {
        matches!(self, Device::Cpu)
    }

    pub fn is_gpu(self) -> bool {
        !self.is_cpu()
    }

    /// The first usable CUDA device, else the CPU.
    pub fn auto() -> Device {
        #[cfg(feature = "cuda")]
        if crate::backend::cuda::is_available(0) {
            return Device::Cuda(0);
        }
        Device::Cpu
    }

    /// Parses `cpu`, `cuda`, `cuda:N`, `gpu`, `gpu:N` or `auto`.
    pub fn parse(s: &str) -> Result<Device> {
        let bad = || {
            Error::msg(format!(
                "device: expected cpu, cuda, cuda:N or auto, found {s:?}"
            ))
        };
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| bad())?)),
            None => (s, None),
        };
        match (kind, index) {
            ("cpu", None) => Ok(Device::Cpu),
            ("auto", None) => Ok(Device::auto()),
            ("cuda", i) => Ok(Device::Cuda(i.unwrap_or(0))),
            ("gpu", i) => Ok(Device::Gpu(i.unwrap_or(0))),
            _ => Err(bad()),
        }
    }

    /// Checks that this device can run work here (a clear error naming why not).
    pub fn check(self) -> Result<()> {
        crate::backend::for_device(self).map(|_| ())
    }
}

/// The process-wide default, encoded as kind << 32 | ordinal (read on every op: no lock).
static DEFAULT_DEVICE: AtomicU64 = AtomicU64::new(0);

fn encode(d: Device) -> u64 {
    match d {
        Device::Cpu => 0,
        Device::Cuda(i) => 1 << 32 | i as u64,
        Device::Gpu(i) => 2 << 32 | i as u64,
    }
}

fn decode(v: u64) -> Device {
    let i = (v & 0xffff_ffff) as usize;
    match v >> 32 {
        1 => Device::Cuda(i),
        2 => Device::Gpu(i),
        _ => Device::Cpu,
    }
}

thread_local! {
    static THREAD_DEVICE: Cell<Option<Device>> = const { Cell::new(None) };
}

/// The device new arrays and input-less ops go to on this thread. The process starts on the
/// CPU, or on `$RMLX_DEVICE` (`cpu`, `cuda`, `cuda:N`, `auto`) when set: that runs a whole
/// program, or the whole test suite, on a GPU.
pub fn default_device() -> Device {
    static FROM_ENV: std::sync::Once = std::sync::Once::new();
    FROM_ENV.call_once(|| {
        if let Ok(v) = std::env::var("RMLX_DEVICE") {
            match Device::parse(&v) {
                Ok(d) => DEFAULT_DEVICE.store(encode(d), Ordering::Relaxed),
                Err(e) => eprintln!("RMLX_DEVICE ignored: {e}"),
            }
        }
    });
    THREAD_DEVICE
        .with(|d| d.get())
        .unwrap_or_else(|| decode(DEFAULT_DEVICE.load(Ordering::Relaxed)))
}

/// Sets the process-wide default device (after checking it is usable).
pub fn set_default_device(device: Device) -> Result<()> {
    device.check()?;
    let _ = default_device(); // read $RMLX_DEVICE first, so it cannot override this later
    DEFAULT_DEVICE.store(encode(device), Ordering::Relaxed);
    Ok(())
}

/// Runs `f` with `device` as this thread's default device (restored after, also on panic).
pub fn with_default_device<R>(device: Device, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Device>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_DEVICE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(THREAD_DEVICE.with(|d| d.replace(Some(device))));
    f()
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Gpu(i) => write!(f, "gpu:{i}"),
        }
    }
}

/// An ordered queue of work on a device. On the CPU work runs when it is encoded; on a GPU it is
/// queued and runs later, in order (one stream per device today: index 0). Every node records the
/// stream it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    pub device: Device,
    pub index: usize,
}

impl Stream {
    pub fn default_for(device: Device) -> Self {
        Stream { device, index: 0 }
    }
}
