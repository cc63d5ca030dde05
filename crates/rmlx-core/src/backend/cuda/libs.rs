//! Finding CUDA's shared libraries at run time. The driver (libcuda) comes with the GPU's
//! driver; NVRTC comes with a toolkit, or, on a machine without one, from the PyPI wheel
//! `nvidia-cuda-nvrtc` unpacked under the rmlx home (`fetch_nvrtc`). cudarc opens libraries by
//! name, so a wheel's copy is opened here first by path: the dynamic loader then resolves
//! cudarc's later open of the same soname to it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The wheel fetched when NVRTC is missing. 13.0 matches the oldest driver of CUDA 13
/// (cubins built by it load on every 13.x driver).
pub const NVRTC_WHEEL: &str = "nvidia-cuda-nvrtc==13.0.88";

/// The rmlx home: `$RMLX_HOME`, else `$XDG_CACHE_HOME/rmlx`, else `~/.cache/rmlx`.
pub(crate) fn rmlx_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("RMLX_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("rmlx"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("rmlx"))
}

/// Where a fetched wheel's libraries live.
pub fn nvrtc_dir() -> Option<PathBuf> {
    rmlx_home().map(|h| h.join("nvrtc").join("lib"))
}

/// Opens a fetched NVRTC (if any) once, so cudarc finds it by soname.
pub(crate) fn ensure_nvrtc() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if let Some(dir) = nvrtc_dir() {
            preload_from(&dir);
        }
    });
}

fn preload_from(dir: &Path) {
    // The builtins library first: libnvrtc opens it by name when compiling.
    for name in ["libnvrtc-builtins.so", "libnvrtc.so"] {
        if let Some(path) = find_versioned(dir, name) {
            preload(&path);
        }
    }
}

fn find_versioned(dir: &Path, stem: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(stem))
        })
        .collect();
    found.sort();
    found.pop()
}

fn preload(path: &Path) {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: opening NVIDIA's NVRTC runs only its (trusted, side-effect free) initializers.
    // The handle is leaked on purpose: the library must stay loaded for the process's life.
    if let Ok(lib) = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) } {
        std::mem::forget(lib);
    }
}

/// Downloads `NVRTC_WHEEL` with pip and unpacks its libraries into `nvrtc_dir()`.
/// Used by the tests (CI has no toolkit) and by the CLI when NVRTC is missing.
pub fn fetch_nvrtc() -> Result<PathBuf> {
    let dir = nvrtc_dir().ok_or_else(|| Error::msg("cuda: no home directory for NVRTC"))?;
    if find_versioned(&dir, "libnvrtc.so").is_some() {
        return Ok(dir);
    }
    let tmp = dir.with_file_name(format!("download-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cuda: creating a download folder", e))?;
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
        ])
        .arg("-d")
        .arg(&tmp)
        .arg(NVRTC_WHEEL)
        .status()
        .map_err(|e| Error::io("cuda: running `python3 -m pip download` for NVRTC", e))?;
    if !status.success() {
        return Err(Error::msg(format!(
            "cuda: `pip download {NVRTC_WHEEL}` failed ({status})"
        )));
    }
    let wheel = std::fs::read_dir(&tmp)
        .map_err(|e| Error::io("cuda: reading the download folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::msg("cuda: pip downloaded no NVRTC wheel"))?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cuda: creating the NVRTC folder", e))?;
    // A wheel is a zip; python's zipfile extracts the two libraries without other tools.
    let script = "import sys,zipfile,os\nz=zipfile.ZipFile(sys.argv[1])\nfor n in z.namelist():\n    b=os.path.basename(n)\n    if '/lib/' in n and b.startswith('libnvrtc'):\n        open(os.path.join(sys.argv[2],b),'wb').write(z.read(n))\n";
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(&dir)
        .status()
        .map_err(|e| Error::io("cuda: unpacking the NVRTC wheel", e))?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !status.success() || find_versioned(&dir, "libnvrtc.so").is_none() {
        return Err(Error::msg("cuda: the NVRTC wheel held no libnvrtc"));
    }
    preload_from(&dir);
    Ok(dir)
}
