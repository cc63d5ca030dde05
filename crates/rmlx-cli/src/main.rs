//! `rmlx`: the command-line front end. Each subcommand lives in `commands/<name>.rs`.

// No unsafe code here: the unsafe kernels live in rmlx-core, behind safe APIs.
#![forbid(unsafe_code)]

mod commands;

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "rmlx", version, about = "Run and inspect LLMs with rmlx")]
pub struct Cli {
    /// CPU threads for compute (default: all cores).
    #[arg(short = 't', long, global = true)]
    threads: Option<usize>,

    /// Where models run: cpu, cuda, cuda:N, or auto (the first usable CUDA GPU, else the CPU).
    #[arg(long, global = true, default_value = "auto")]
    device: String,

    #[command(subcommand)]
    command: commands::Command,
}

/// The error and its causes on one line, skipping a cause whose text the previous message
/// already ends with (our errors print their source inline).
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !out.ends_with(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out
}

/// mimalloc: decode frees and reallocates hundreds of buffers a token (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        if let Some(n) = cli.threads {
            rmlx_core::backend::cpu::set_num_threads(n)?;
        }
        let device = rmlx_core::Device::parse(&cli.device)?;
        if cli.device == "auto" && device.is_cpu() && rmlx_core::backend::cuda::device_count() > 0 {
            // A GPU is here but not usable (most often: no NVRTC): say why once.
            if let Err(e) = rmlx_core::backend::cuda::describe(0) {
                eprintln!("note: running on the CPU: {e}");
            }
        }
        rmlx_core::set_default_device(device)?;
        commands::run(cli.command)
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
