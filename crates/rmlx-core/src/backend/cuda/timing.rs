//! Device-side op timing for `profile` (`rmlx bench --profile`): the kernels of each op are
//! bracketed by two CUDA events on the device's stream, so an op's GPU time is measured
//! without waiting between ops (waiting would add a launch round trip to every op and hide how
//! the queue actually runs). The spans are read once the stream has finished
//! (`CudaDevice::flush_spans`).

use super::device::CudaDevice;
use crate::error::Result;
use cudarc::driver::{sys, CudaEvent};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Spans {
    open: Option<CudaEvent>,
    done: Vec<(String, CudaEvent, CudaEvent)>,
}

impl CudaDevice {
    fn timing_event(&self) -> Result<CudaEvent> {
        let ev = self
            .ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| self.error("creating a timing event", e))?;
        ev.record(&self.stream)
            .map_err(|e| self.error("recording a timing event", e))?;
        Ok(ev)
    }

    /// Marks the start of an op's kernels on the stream.
    pub(crate) fn begin_span(&self) -> Result<()> {
        let ev = self.timing_event()?;
        self.lock_spans().open = Some(ev);
        Ok(())
    }

    /// Marks the end of the op begun last, naming it `label`.
    pub(crate) fn end_span(&self, label: String) -> Result<()> {
        let end = self.timing_event()?;
        let mut spans = self.lock_spans();
        if let Some(start) = spans.open.take() {
            spans.done.push((label, start, end));
        }
        Ok(())
    }

    /// Waits for the stream and hands every finished span to `crate::profile`.
    pub(crate) fn flush_spans(&self) -> Result<()> {
        let done = std::mem::take(&mut self.lock_spans().done);
        if done.is_empty() {
            return Ok(());
        }
        self.synchronize()?;
        for (label, start, end) in done {
            let ms = start
                .elapsed_ms(&end)
                .map_err(|e| self.error("reading a timing event", e))?;
            crate::profile::record(label, Duration::from_secs_f64(ms.max(0.0) as f64 * 1e-3));
        }
        Ok(())
    }

    fn lock_spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }
}
