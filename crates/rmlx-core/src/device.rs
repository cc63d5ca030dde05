//! Devices and streams. A buffer lives on one device; `eval` moves an op's inputs to the op's
//! device once (unified memory model).

use std::fmt;

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

/// An ordered queue of work on a device. On the CPU work runs when submitted; on a GPU it is
/// enqueued and `synchronize` waits for it.
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
