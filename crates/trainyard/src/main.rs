//! The `trainyard` binary: `trainyard serve` runs the whole service in one process (HTTP API,
//! metadata, the data plane and its compactor, the task runner and the cron scheduler);
//! `trainyard worker` runs the task runner alone; `import`, `stats`, `compact`, `cancel`,
//! `users`, `keys` and `policies` are tools that talk to a running server; `train-offline`
//! trains in-process on a stopped server's data dir.
//!
//! # What lives here
//! Flag parsing, layered configuration ([`config`]), the root AccessKey ([`keys`]), the server
//! lifecycle ([`server`]) and the command-line tools ([`client`], [`import`],
//! [`dataset_commands`], [`ram_commands`]): wiring only. Domain rules live in `trainyard-core`, HTTP in
//! `trainyard-api`, SQL in `trainyard-store`, records and files in `trainyard-data`.

mod client;
mod config;
mod dataset_commands;
mod import;
mod keys;
mod offline;
mod ram_commands;
mod server;
mod task_commands;

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
    /// Serve the API and train tasks (prints the listen address and the root AccessKey id).
    Serve(config::ServeFlags),
    /// Train tasks only, without the API (shares the database and object store with servers).
    Worker(config::ServeFlags),
    /// Cancel a pending or running training task of a running server.
    Cancel(task_commands::CancelArgs),
    /// Load CSV, JSON Lines or Parquet files into an app group of a running server.
    Import(import::ImportArgs),
    /// Show an app group's dataset statistics and whether each function can train on it.
    Stats(dataset_commands::StatsArgs),
    /// Compact an app group's ingest log into Parquet files now.
    Compact(dataset_commands::CompactArgs),
    /// Manage the RAM users of a running server.
    Users(ram_commands::UsersArgs),
    /// Manage RAM users' AccessKeys (create, list, disable, enable, delete, rotate).
    Keys(ram_commands::KeysArgs),
    /// Manage RAM policies, attach them to users, and simulate a decision.
    Policies(ram_commands::PoliciesArgs),
    /// Train one function in this process on a stopped server's data dir (benchmarks,
    /// debugging); records nothing.
    TrainOffline(offline::TrainOfflineArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(flags) => {
            let serve_config = config::ServeConfig::load(&flags)?;
            runtime.block_on(server::serve(serve_config))
        }
        Command::Worker(flags) => {
            let worker_config = config::ServeConfig::load(&flags)?;
            runtime.block_on(server::work(worker_config))
        }
        Command::Cancel(arguments) => runtime.block_on(task_commands::cancel(arguments)),
        Command::Import(arguments) => runtime.block_on(import::run(arguments)),
        Command::Stats(arguments) => runtime.block_on(dataset_commands::stats(arguments)),
        Command::Compact(arguments) => runtime.block_on(dataset_commands::compact(arguments)),
        Command::Users(arguments) => runtime.block_on(ram_commands::users(arguments)),
        Command::Keys(arguments) => runtime.block_on(ram_commands::keys(arguments)),
        Command::Policies(arguments) => runtime.block_on(ram_commands::policies(arguments)),
        Command::TrainOffline(arguments) => runtime.block_on(offline::run(arguments)),
    }
}
