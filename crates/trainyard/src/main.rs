//! The `trainyard` binary: `trainyard serve` runs the whole service in one process (HTTP API and
//! SQLite metadata; the task runner and the data plane arrive in later steps).
//!
//! # What lives here
//! Flag parsing, layered configuration ([`config`]), the root AccessKey ([`keys`]) and the
//! server lifecycle ([`server`]): wiring only. Domain rules live in `trainyard-core`, HTTP in
//! `trainyard-api`, SQL in `trainyard-store`.

mod config;
mod keys;
mod server;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "trainyard", version, about = "Train and serve search-algorithm models (OpenSearch function API)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (prints the listen address and the root AccessKey id).
    Serve(config::ServeFlags),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(flags) => {
            let serve_config = config::ServeConfig::load(&flags)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(server::serve(serve_config))
        }
    }
}
