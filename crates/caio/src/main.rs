//! # caio
//!
//! The caio command: `serve` runs the router over HTTP with its SQLite
//! store; `token` signs development tokens; `route` decides offline;
//! `trace verify` checks a trace log; `contracts check` validates contract
//! files; `health` asks a running caio whether it is alive. Exit codes: 0 success, 1 a problem was found (invalid contracts, a
//! broken chain, no service qualifies), 2 a usage or configuration error.
//!
//! This binary only parses arguments and prints: routing is the calculus's,
//! storage the store's and serving the server's.

mod allocator;
mod commands;
mod config;

// A decision allocates many small values (views, proofs, the trace): with
// glibc's allocator a third of the server's time went to malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Routes AI requests to services and proves every decision.
#[derive(Debug, Parser)]
#[command(name = "caio", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the router: HTTP API, SQLite store, verifiable trace log.
    Serve(commands::serve::Args),
    /// Sign a development token with the published example keys (local trials only).
    Token(commands::token::Args),
    /// Route a request offline and say why every other service was not chosen.
    Route(commands::route::Args),
    /// Work with trace logs.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Ask a running caio whether it is alive (GET /healthz); exit 0 only on 200.
    Health(commands::health::Args),
    /// Work with contract files.
    Contracts {
        #[command(subcommand)]
        command: ContractsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Verify the hash chain of a store (SQLite file or PostgreSQL database) or of a JSON Lines file of traces.
    Verify {
        /// The SQLite file of a store, a `postgres://` URL, or a `.jsonl` file with one trace per line.
        log: String,
        /// First sequence number to check (default: the start).
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number to check (default: the head).
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum ContractsCommand {
    /// Check every contract file of a directory; each bad file is reported at its field path.
    Check {
        /// The directory.
        dir: PathBuf,
    },
}

/// What a command ended with.
pub enum Outcome {
    /// It did what was asked.
    Done,
    /// It found a problem (already printed).
    Problems,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            allocator::run_with_server_options();
            commands::serve::run(args)
        }
        Command::Token(args) => commands::token::run(args),
        Command::Route(args) => commands::route::run(args),
        Command::Trace { command: TraceCommand::Verify { log, from, to } } => commands::trace::verify(&log, from, to),
        Command::Health(args) => commands::health::run(args),
        Command::Contracts { command: ContractsCommand::Check { dir } } => commands::contracts::check(&dir),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
