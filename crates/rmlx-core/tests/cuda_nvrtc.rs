//! Every CUDA kernel compiles with NVRTC for sm_80 and sm_90, on any machine: CI has no GPU
//! and no toolkit, so NVRTC comes from the PyPI wheel when it is not installed.
#![cfg(feature = "cuda")]

use rmlx_core::backend::cuda::{kernel_sources, libs, nvrtc};

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    if !nvrtc::is_available() {
        let dir = libs::fetch_nvrtc().expect("fetching NVRTC from PyPI");
        eprintln!("NVRTC fetched into {}", dir.display());
    }
    assert!(
        nvrtc::is_available(),
        "NVRTC still missing after fetching it"
    );
    let version = nvrtc::version().unwrap();
    // A fresh cache folder: compile for real, not from an earlier run's entries.
    let home = std::env::temp_dir().join(format!("rmlx-nvrtc-test-{}", std::process::id()));
    std::env::set_var("RMLX_NO_KERNEL_CACHE", "1");
    let sources = kernel_sources();
    assert!(
        sources.len() > 100,
        "expected every family's kernels, found {}",
        sources.len()
    );
    let mut failures = Vec::new();
    for arch in [(8, 0), (9, 0)] {
        for (key, src) in &sources {
            match nvrtc::compile_cubin(src, key, arch) {
                Ok(bin) => assert!(bin.len() > 64, "{key}: empty cubin"),
                Err(e) => failures.push(format!("sm_{}{} {key}: {e}", arch.0, arch.1)),
            }
        }
    }
    let _ = std::fs::remove_dir_all(home);
    assert!(
        failures.is_empty(),
        "NVRTC {version:?}:\n{}",
        failures.join("\n")
    );
}
