//! Run-time compilation of kernel sources with NVRTC, straight to SASS (a cubin) for the
//! device's architecture, cached in memory by the caller and on disk here.
//!
//! A cubin, not PTX: PTX from a newer NVRTC than the driver is refused by the driver, while a
//! cubin for the exact architecture loads on any driver of the same major version. The disk
//! cache lives under `$RMLX_HOME/cuda-kernels` (else `$XDG_CACHE_HOME/rmlx/…`, `~/.cache/rmlx/…`),
//! one file per (source, architecture, NVRTC version, options), with a checksum: a corrupt or
//! truncated entry is rebuilt, never loaded.

use crate::error::{Error, Result};
use cudarc::nvrtc::sys;
use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// Options every kernel is compiled with (part of the cache key).
const OPTIONS: &[&str] = &["--std=c++17"];

/// Stable 64-bit FNV-1a (the disk cache key must not change between Rust versions).
pub(crate) fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Whether NVRTC can be loaded (from the system, or from the PyPI wheel under the rmlx home).
pub fn is_available() -> bool {
    // Once found, NVRTC stays loaded: remember that (probing opens the library each time).
    static FOUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if FOUND.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    super::libs::ensure_nvrtc();
    // SAFETY: only probes whether the shared library can be opened; calls nothing in it.
    let found = unsafe { sys::is_culib_present() };
    FOUND.store(found, std::sync::atomic::Ordering::Relaxed);
    found
}

/// NVRTC's version as (major, minor).
pub fn version() -> Result<(i32, i32)> {
    if !is_available() {
        return Err(Error::msg(
            "cuda: NVRTC (libnvrtc) was not found; install the CUDA toolkit or the PyPI package \
             nvidia-cuda-nvrtc",
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); the out-pointers are valid locals.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    check(r, "nvrtcVersion")?;
    Ok((major, minor))
}

fn check(r: sys::nvrtcResult, what: &str) -> Result<()> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(Error::msg(format!("cuda: {what} failed: {r:?}")))
    }
}

/// Compiles `source` (named `name` in messages) to a cubin for `sm_{major}{minor}`, through the
/// disk cache.
pub fn compile_cubin(source: &str, name: &str, arch: (i32, i32)) -> Result<Vec<u8>> {
    let (vmaj, vmin) = version()?;
    let arch_flag = format!("--gpu-architecture=sm_{}{}", arch.0, arch.1);
    let options = OPTIONS.join(" ");
    let version = [vmaj as u8, vmin as u8];
    let key_parts: Vec<&[u8]> = vec![
        source.as_bytes(),
        arch_flag.as_bytes(),
        &version,
        options.as_bytes(),
    ];
    let key = format!(
        "{:016x}{:016x}",
        fnv1a(0, &key_parts),
        fnv1a(0x9e37_79b9_7f4a_7c15, &key_parts)
    );
    let path = cache_dir().map(|d| d.join(format!("{key}.cubin")));
    if let Some(p) = &path {
        if let Some(bin) = read_entry(p) {
            return Ok(bin);
        }
    }
    let bin = compile_uncached(source, name, &arch_flag)?;
    if let Some(p) = &path {
        write_entry(p, &bin); // best effort: a read-only home still runs, uncached
    }
    Ok(bin)
}

fn compile_uncached(source: &str, name: &str, arch_flag: &str) -> Result<Vec<u8>> {
    let src = CString::new(source)
        .map_err(|_| Error::msg(format!("cuda: kernel source {name} contains a NUL byte")))?;
    let cname = CString::new(name).unwrap_or_default();
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: `src` and `cname` are NUL-terminated and outlive the call; no headers are passed.
    let r = unsafe {
        sys::nvrtcCreateProgram(
            &mut prog,
            src.as_ptr(),
            cname.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    check(r, "nvrtcCreateProgram")?;
    let result = compile_program(prog, name, arch_flag);
    // SAFETY: `prog` was created above and is destroyed exactly once.
    unsafe { sys::nvrtcDestroyProgram(&mut prog) };
    result
}

fn compile_program(prog: sys::nvrtcProgram, name: &str, arch_flag: &str) -> Result<Vec<u8>> {
    let opts: Vec<CString> = OPTIONS
        .iter()
        .copied()
        .chain([arch_flag])
        .map(|o| CString::new(o).expect("options have no NUL"))
        .collect();
    let ptrs: Vec<*const std::ffi::c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `prog` is a live program; `ptrs` points at `opts`, which outlive the call.
    let r = unsafe { sys::nvrtcCompileProgram(prog, ptrs.len() as i32, ptrs.as_ptr()) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::msg(format!(
            "cuda: kernel {name} failed to compile ({r:?}):\n{}",
            program_log(prog)
        )));
    }
    let mut size = 0usize;
    // SAFETY: `prog` compiled successfully; `size` is a valid out-pointer.
    let r = unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) };
    check(r, "nvrtcGetCUBINSize")?;
    let mut bin = vec![0u8; size];
    // SAFETY: `bin` has exactly the size NVRTC reported for this program's image.
    let r = unsafe { sys::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut std::ffi::c_char) };
    check(r, "nvrtcGetCUBIN")?;
    Ok(bin)
}

fn program_log(prog: sys::nvrtcProgram) -> String {
    let mut size = 0usize;
    // SAFETY: `prog` is live; `size` is a valid out-pointer.
    if unsafe { sys::nvrtcGetProgramLogSize(prog, &mut size) } != sys::nvrtcResult::NVRTC_SUCCESS {
        return String::from("(no log)");
    }
    let mut log = vec![0u8; size.max(1)];
    // SAFETY: `log` holds the reported size (NUL included).
    unsafe { sys::nvrtcGetProgramLog(prog, log.as_mut_ptr() as *mut std::ffi::c_char) };
    CStr::from_bytes_until_nul(&log)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn cache_dir() -> Option<PathBuf> {
    if std::env::var_os("RMLX_NO_KERNEL_CACHE").is_some() {
        return None;
    }
    super::libs::rmlx_home().map(|h| h.join("cuda-kernels"))
}

const MAGIC: &[u8; 8] = b"RMLXCUB1";

/// An entry is MAGIC, the payload's length and checksum (8 bytes each, little-endian), payload.
fn read_entry(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    let payload = bytes.get(24..)?;
    (payload.len() == len && fnv1a(0, &[payload]) == sum).then(|| payload.to_vec())
}

fn write_entry(path: &std::path::Path, bin: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut bytes = Vec::with_capacity(bin.len() + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(bin.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&fnv1a(0, &[bin]).to_le_bytes());
    bytes.extend_from_slice(bin);
    // Write then rename: a reader never sees a half-written entry.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_cache_entry_is_not_loaded() {
        let dir = std::env::temp_dir().join(format!("rmlx-cubin-{}", std::process::id()));
        let p = dir.join("x.cubin");
        write_entry(&p, b"payload bytes");
        assert_eq!(read_entry(&p).as_deref(), Some(&b"payload bytes"[..]));
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(
            read_entry(&p).is_none(),
            "flipped byte must fail the checksum"
        );
        std::fs::write(&p, &bytes[..20]).unwrap();
        assert!(read_entry(&p).is_none(), "truncated entry must be rejected");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
