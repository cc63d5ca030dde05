//! `rmlx`: run open-weight LLMs locally. Thin front end over `rmlx-lm`.

mod commands;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "rmlx",
    version,
    about = "Run open-weight LLMs locally (Rust MLX)"
)]
struct Cli {
    /// CPU threads (default: all cores).
    #[arg(short = 't', long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() {
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        if let Err(e) = rmlx_core::backend::cpu::set_num_threads(t) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    if let Err(e) = commands::run(cli.command) {
        // One line: the whole context chain.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
