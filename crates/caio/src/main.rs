//! # caio
//!
//! The caio command: `serve` runs the router over HTTP with its store;
//! `token` signs development tokens; `route` decides offline; `trace
//! verify` checks a trace log (and a signed checkpoint), `trace prove` and
//! `trace check-proof` make and check a decision's inclusion proof;
//! `checkpoint key` prints a verifier key; `witness` follows a running
//! caio's checkpoints; `contracts check` validates contract files; `health`
//! asks a running caio whether it is alive. Exit codes: 0 success, 1 a
//! problem was found (invalid contracts, a broken chain, a refused proof, a
//! forked or rolled-back log, no service qualifies), 2 a usage or
//! configuration error.
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
    /// Work with the log's signed checkpoints.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Follow a running caio's signed checkpoints: check each against the last one seen, cosign what is consistent, refuse (exit 1) a fork or a rollback.
    Witness(commands::transparency::WitnessArgs),
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
        /// A signed checkpoint (C2SP signed note, as GET /v1/checkpoint serves it) the whole log must extend.
        #[arg(long, requires = "key")]
        checkpoint: Option<PathBuf>,
        /// The log's verifier key (as `caio checkpoint key` prints it), or a file holding it.
        #[arg(long, requires = "checkpoint")]
        key: Option<String>,
    },
    /// Print the proof that a decision is in the log: the trace, its inclusion proof and the signed checkpoint it is in (JSON).
    Prove {
        /// The store: a SQLite file or a `postgres://` URL.
        store: String,
        /// The decision's sequence number.
        seq: u64,
        /// The size of the checkpoint to prove against (default: the latest).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Write the log up to a signed checkpoint as static files in C2SP's tlog-tiles layout, for any file server to serve to auditors.
    Export {
        /// The store: a SQLite file or a `postgres://` URL.
        store: String,
        /// The directory to write (`checkpoint`, `tile/...`, `traces.jsonl`).
        #[arg(long)]
        tiles: PathBuf,
        /// The size of the checkpoint to export (default: the latest).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Check a proof that `caio trace prove` printed, offline, with the log's verifier key only.
    CheckProof {
        /// The proof's file.
        proof: PathBuf,
        /// The log's verifier key, or a file holding it.
        #[arg(long)]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// Print the verifier key (name+hash+base64) of an Ed25519 private key (PKCS#8 PEM).
    Key {
        /// The private key.
        #[arg(long)]
        key: PathBuf,
        /// The key's name: the log's origin (for a log key) or the witness's name.
        #[arg(long)]
        name: String,
        /// The key of a witness: print the verifier of its cosignatures.
        #[arg(long)]
        witness: bool,
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
        Command::Trace { command: TraceCommand::Verify { log, from, to, checkpoint, key } } => {
            let signed = checkpoint.zip(key).map(|(file, key)| commands::trace::SignedCheckpoint { file, key });
            commands::trace::verify(&log, from, to, signed)
        }
        Command::Trace { command: TraceCommand::Prove { store, seq, size } } => commands::trace::open_store(&store)
            .and_then(|(_, opened)| {
                let store = opened?;
                commands::transparency::prove(store.as_ref(), seq, size)
            }),
        Command::Trace { command: TraceCommand::Export { store, tiles, size } } => commands::trace::open_store(&store)
            .and_then(|(_, opened)| {
                let store = opened?;
                commands::transparency::export(store.as_ref(), &tiles, size)
            }),
        Command::Trace { command: TraceCommand::CheckProof { proof, key } } => {
            commands::transparency::check_proof(&proof, &key)
        }
        Command::Checkpoint { command: CheckpointCommand::Key { key, name, witness } } => {
            commands::transparency::key(&key, &name, witness)
        }
        Command::Witness(args) => commands::transparency::witness(args, commands::now()),
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
