//! `rmlx fetch-nvrtc`: unpack NVRTC (the CUDA run-time compiler) from the PyPI package
//! `nvidia-cuda-nvrtc` under the rmlx home, for machines with an NVIDIA driver but no toolkit.

use clap::Args as ClapArgs;

#[derive(ClapArgs)]
pub struct Args {}

pub fn run(_: Args) -> anyhow::Result<()> {
    let dir = rmlx_core::backend::cuda::libs::fetch_nvrtc()?;
    eprintln!("NVRTC is in {}", dir.display());
    for i in 0..rmlx_core::backend::cuda::device_count() {
        match rmlx_core::backend::cuda::describe(i) {
            Ok(name) => eprintln!("cuda:{i}: {name}"),
            Err(e) => eprintln!("cuda:{i}: {e}"),
        }
    }
    Ok(())
}
