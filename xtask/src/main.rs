//! `cargo xtask`: the caio workbench on the command line.
//!
//! This binary is glue: it parses the command line (one clap description
//! drives parsing and `--help`), calls `caio-workbench`, prints a summary,
//! and maps the outcome to an exit code. It must never hold logic of its
//! own; anything worth testing lives in the library.
//!
//! Exit codes: 0 success; 1 the command ran and found problems (drift,
//! unclean notebooks, failing cells, invalid input); 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use caio_workbench::{Workspace, clean, extract, runner, sync};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The caio workbench: notebooks in, crates, outputs and checks out.",
    version
)]
struct Cli {
    /// Workspace root (default: the workspace this xtask belongs to).
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Print no progress, only results and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate crate modules from notebooks with `//| default_exp`.
    Extract {
        /// Write nothing; exit 1 listing every generated file that differs.
        #[arg(long)]
        check: bool,
        /// Overwrite generated files even if they were edited by hand.
        #[arg(long)]
        force: bool,
    },
    /// Carry edits made in generated files back into their notebooks, then extract.
    Sync,
    /// Normalize notebooks (metadata, execution counts, ids, layout), keeping outputs.
    Clean {
        /// Write nothing; exit 1 listing every notebook that is not clean.
        #[arg(long)]
        check: bool,
        /// Notebooks to clean (default: all under notebooks/).
        notebooks: Vec<PathBuf>,
    },
    /// Execute notebooks with the native runner and write their outputs back.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Notebooks to run (default: all under notebooks/).
        notebooks: Vec<PathBuf>,
    },
    /// The main job: extract --check, clean --check, run --check on everything.
    Validate {
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Write nothing; exit 1 if any notebook's outputs would change.
    #[arg(long)]
    check: bool,
    /// Notebooks run at once (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Seconds one notebook may run before it is stopped.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,
}

impl RunArgs {
    fn options(&self, quiet: bool) -> runner::Options {
        let mut options = runner::Options {
            check: self.check,
            timeout: Duration::from_secs(self.timeout),
            quiet,
            ..runner::Options::default()
        };
        if let Some(jobs) = self.jobs {
            options.jobs = jobs.max(1);
        }
        options
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

fn execute(cli: &Cli) -> Result<()> {
    let root = match &cli.workspace {
        Some(dir) => dir.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_owned(),
    };
    let ws = Workspace::new(root);
    match &cli.command {
        Command::Extract { check, force } => {
            let started = Instant::now();
            let report = extract::run(&ws, extract::Options { check: *check, force: *force })?;
            for path in &report.written {
                println!("wrote {path}");
            }
            for path in &report.removed {
                println!("removed {path}");
            }
            println!(
                "extract: {} written, {} removed, {} up to date ({:.2}s)",
                report.written.len(),
                report.removed.len(),
                report.unchanged,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Sync => {
            let report = sync::run(&ws)?;
            for (notebook, cell) in &report.cells {
                println!("synced cell {cell} of {notebook}");
            }
            println!(
                "sync: {} cells carried back, {} files regenerated",
                report.cells.len(),
                report.extract.written.len()
            );
        }
        Command::Clean { check, notebooks } => {
            let files = ws.notebook_args(notebooks)?;
            let changed = clean::run(&ws, &files, clean::Options { check: *check })?;
            for path in &changed {
                println!("cleaned {path}");
            }
            println!("clean: {} notebooks {}", changed.len(), if *check { "checked" } else { "changed" });
        }
        Command::Run { run, notebooks } => {
            let files = if notebooks.is_empty() { ws.notebooks()? } else { ws.notebook_args(notebooks)? };
            let started = Instant::now();
            let outcomes = runner::run(&ws, &files, &run.options(cli.quiet))?;
            let changed = outcomes.iter().filter(|o| o.changed).count();
            println!(
                "run: {} notebooks ran, {changed} with new outputs ({:.1}s)",
                outcomes.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Validate { run } => validate(&ws, run, cli.quiet)?,
    }
    Ok(())
}

/// Every check in order, each reported on one line; fails if any failed.
fn validate(ws: &Workspace, run: &RunArgs, quiet: bool) -> Result<()> {
    let mut failures = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> caio_workbench::Result<String>| {
        let started = Instant::now();
        let (status, detail) = match f() {
            Ok(detail) => ("ok", detail),
            Err(e) => {
                failures.push(format!("{name}:\n{e}"));
                ("FAILED", String::new())
            }
        };
        println!("{name:<16} {status:<7} {:>7.2}s  {detail}", started.elapsed().as_secs_f64());
    };
    step("extract --check", &mut || {
        extract::run(ws, extract::Options { check: true, force: false })
            .map(|r| format!("{} generated files", r.unchanged))
    });
    step("clean --check", &mut || {
        clean::run(ws, &[], clean::Options { check: true }).map(|_| "notebooks clean".to_owned())
    });
    let options = runner::Options { check: true, ..run.options(quiet) };
    step("run --check", &mut || {
        let files = ws.notebooks()?;
        runner::run(ws, &files, &options).map(|o| format!("{} notebooks executed, outputs current", o.len()))
    });
    if failures.is_empty() {
        println!("validate: ok");
        Ok(())
    } else {
        anyhow::bail!("validate failed:\n{}", failures.join("\n"))
    }
}
