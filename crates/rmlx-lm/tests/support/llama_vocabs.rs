//! llama.cpp's test vocabularies (`models/ggml-vocab-*.gguf`, MIT), fetched once into the
//! rmlx cache (`$RMLX_HOME`, see `rmlx_lm::default_model::cache_dir`) from the only place a
//! package registry carries them: the PyPI sdist of llama-cpp-python, whose
//! `vendor/llama.cpp/` is llama.cpp's tree. As for the default model, Python 3 does the
//! fetching: it finds the sdist on PyPI's simple index (as scripts/gpu/llamacpp_src.sh does),
//! checks its pinned SHA-256 and streams out only the files asked for (~33 MB of the 77 MB).
//! The files land in a temporary directory renamed into place when complete, so a cache
//! directory is always whole, whoever fetched it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = "0.3.36";
const SHA256: &str = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";

/// The vocabularies fetched (those not committed under `fixtures/vocabs/gguf/`).
pub const FETCHED: &[&str] = &[
    "llama-bpe",
    "qwen2",
    "starcoder",
    "refact",
    "command-r",
    "falcon",
    "mpt",
];

const SCRIPT: &str = r##"
import hashlib, pathlib, re, sys, tarfile, urllib.request
ver, sha, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
index = "https://pypi.org/simple/llama-cpp-python/"
page = urllib.request.urlopen(index, timeout=60).read().decode()
m = re.search(r'https://[^"#]*llama_cpp_python-' + re.escape(ver) + r'\.tar\.gz', page)
if not m:
    sys.exit(f"llama_cpp_python-{ver}.tar.gz is not on {index}")
class Hashed:
    def __init__(self, f): self.f, self.h = f, hashlib.sha256()
    def read(self, n=-1):
        b = self.f.read(n); self.h.update(b); return b
want = {"vendor/llama.cpp/models/ggml-vocab-" + n + ".gguf" for n in sys.argv[4:]}
want.add("vendor/llama.cpp/LICENSE")
with urllib.request.urlopen(m.group(0), timeout=60) as r:
    src = Hashed(r)
    with tarfile.open(fileobj=src, mode="r|gz") as tf:
        for mem in tf:
            rel = mem.name.split("/", 1)[-1]
            if rel in want and mem.isfile():
                (out / rel.rsplit("/", 1)[-1]).write_bytes(tf.extractfile(mem).read())
                want.discard(rel)
    while src.read(1 << 20):
        pass
if src.h.hexdigest() != sha:
    sys.exit(f"{m.group(0)}: SHA-256 {src.h.hexdigest()}, expected {sha}")
if want:
    sys.exit("not in the sdist: " + ", ".join(sorted(want)))
"##;

/// The directory holding every `FETCHED` vocabulary, fetched on first use (once per process;
/// an error says what could not be fetched and why).
pub fn dir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(fetch).clone()
}

fn fetch() -> Result<PathBuf, String> {
    let cache = rmlx_lm::default_model::cache_dir();
    let dir = cache.join(format!("llama.cpp-{VERSION}-vocabs"));
    if complete(&dir) {
        return Ok(dir);
    }
    let tmp = cache.join(format!("llama.cpp-vocabs.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    eprintln!(
        "fetching llama.cpp's test vocabularies (llama-cpp-python=={VERSION} sdist from PyPI) \
         into {}",
        dir.display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args([VERSION, SHA256])
        .arg(&tmp)
        .args(FETCHED)
        .output();
    let failure = match out {
        Err(e) => Some(format!("cannot run python3 ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "fetching the llama-cpp-python=={VERSION} sdist failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    };
    if let Some(f) = failure {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(f);
    }
    // Another process may have finished first: its directory is as good as ours.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if complete(&dir) {
        Ok(dir)
    } else {
        Err(format!("{} is incomplete after the fetch", dir.display()))
    }
}

fn complete(dir: &Path) -> bool {
    FETCHED
        .iter()
        .all(|n| dir.join(format!("ggml-vocab-{n}.gguf")).is_file())
}
