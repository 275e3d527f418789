//! `cargo xtask`: the caio workbench on the command line.
//!
//! This binary is glue: it parses the command line (one clap description
//! drives parsing and `--help`), calls `caio-workbench`, prints a summary,
//! and maps the outcome to an exit code. It must never hold logic of its
//! own; anything worth testing lives in the library.
//!
//! Exit codes: 0 success; 1 the command ran and found problems (drift,
//! unclean notebooks, failing cells, invalid input, a blocked gate); 2 usage
//! or configuration error (bad flags, an invalid `gate.toml`, an unknown
//! branch).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use caio_workbench::scorecard::{self, Decision};
use caio_workbench::{Workspace, clean, extract, gate, hooks, mutants, runner, scaffold, stamp, sync, verify};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The caio workbench: notebooks in, crates, outputs and checks out.",
    version
)]
struct Cli {
    /// Workspace root (default: found from the current directory upward, as cargo finds its workspace).
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
    /// Generate crate modules from notebooks with `//| default_exp`; pin the notebooks' `:dep` versions to Cargo.lock.
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
        /// `evcxr` runs the notebooks through evcxr, the engine of the Jupyter
        /// kernel, and compares every cell's outputs with the notebook's
        /// (builds tools/evcxr-engine on first use; writes nothing;
        /// CAIO_EVCXR_OPT=0 sets evcxr's `:opt` level).
        #[arg(long, value_enum, default_value_t = Engine::Native)]
        engine: Engine,
        /// Notebooks to run (default: all under notebooks/).
        notebooks: Vec<PathBuf>,
    },
    /// Run the verification notebooks whose artifacts are missing or stale.
    Verify {
        #[command(flatten)]
        run: RunArgs,
        /// Rerun every verification notebook, fresh or not.
        #[arg(long)]
        force: bool,
    },
    /// Judge the evidence into scorecard.json (or print it as Markdown or HTML).
    Scorecard {
        /// Output: `json` writes scorecard.json; `md` and `html` print a report.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Show what changed against scorecard.json at this git revision.
        #[arg(long, value_name = "GIT_REV")]
        diff: Option<String>,
        /// Write nothing; exit 1 if scorecard.json is not what the evidence gives.
        #[arg(long)]
        check: bool,
        /// Then sign it: an Ed25519 private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`), never in the repository.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Where the signed attestation goes (with --sign).
        #[arg(long, value_name = "FILE", default_value = caio_workbench::attest::DEFAULT_PATH)]
        attestation: PathBuf,
    },
    /// Check signed scorecards.
    Attest {
        #[command(subcommand)]
        action: AttestAction,
    },
    /// Apply the branch policy (gate.toml) to the scorecard: exit 0 pass, 1 blocked, 2 configuration error.
    Gate {
        /// The branch (default: from the CI environment, else git).
        #[arg(long)]
        branch: Option<String>,
    },
    /// The fast checks for pre-commit: drift, clean notebooks, evidence not broken.
    Check {
        /// Judge what is staged for the next commit (git's index), not the working tree.
        #[arg(long)]
        staged: bool,
    },
    /// The main job: extract --check, clean --check, run --check, verify, scorecard, gate.
    ///
    /// Prints each step's time, and all of them at the end. When no file of the workspace
    /// (outside target/ and .git/), the workbench and the toolchain changed since the last
    /// validate that passed with the same flags and branch, it says so and stops there.
    Validate {
        #[command(flatten)]
        run: RunArgs,
        /// The branch the gate judges (default: from the CI environment, else git).
        #[arg(long)]
        branch: Option<String>,
        /// Run every step even if nothing changed since the last validate that passed.
        #[arg(long)]
        force: bool,
    },
    /// Plant each curated bug of tests/mutants in a scratch copy and check that the evidence turns red.
    ///
    /// The full set records the mutation score as an artifact (a pre-release step: about 12 s
    /// per mutant on 2 cores, after a one-time build of about 2.5 minutes); `--only` runs a subset
    /// and writes nothing. Exit 1 if a mutant survives.
    Mutants {
        /// Run only this mutant (repeatable); the names are the file names in tests/mutants.
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// Notebooks run at once (default: number of CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Seconds one verification notebook may run under a mutant (at least 1).
        #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// Write a CycloneDX 1.5 SBOM (JSON) of the `caio` binary's run-time dependency graph; offline, deterministic.
    Sbom {
        /// Where to write it.
        #[arg(long, short, default_value = "target/sbom/caio.cdx.json", value_name = "FILE")]
        output: PathBuf,
        /// The target platform the graph is resolved for.
        #[arg(long, default_value = caio_workbench::deps::DEFAULT_TARGET, value_name = "TRIPLE")]
        target: String,
        /// The workspace package whose binary it describes.
        #[arg(long, default_value = "caio", value_name = "PACKAGE")]
        package: String,
    },
    /// Check every dependency's licence against the policy of deny.toml, offline; exit 1 naming each refused crate.
    Licenses {
        /// The target platform the graph is resolved for.
        #[arg(long, default_value = caio_workbench::deps::DEFAULT_TARGET, value_name = "TRIPLE")]
        target: String,
    },
    /// Fuzz the notebook reader, directive parser, contract/request/policy files and tokens for N minutes.
    ///
    /// Rounds of 5,000 generated cases per property, each round with a new seed; prints
    /// executions per second. A failing case is saved in tests/fixtures/fuzz/ and replayed by
    /// every later run, `cargo test` included.
    Fuzz {
        /// How long to fuzz (at least one round runs).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        minutes: u64,
    },
    /// git's merge driver for notebooks, cell by cell (registered by `hooks install`; git passes %O %A %B %P).
    ///
    /// Writes the merged notebook over OURS and exits 0, or 1 when a cell holds a conflict
    /// (git's markers in its source, a markdown cell above it saying so; the notebook stays
    /// valid). Outputs never conflict; when the merged code is neither side's, execution counts
    /// are cleared until `cargo xtask run`. With --generated, for files the workbench writes:
    /// keeps OURS and exits 1 naming the command that regenerates the file.
    MergeDriver {
        /// The files are generated (crate modules, artifacts, scorecard.json): never merge them as text.
        #[arg(long)]
        generated: bool,
        /// The common ancestor (%O).
        base: PathBuf,
        /// Ours (%A): replaced by the result.
        ours: PathBuf,
        /// Theirs (%B).
        theirs: PathBuf,
        /// The path in the repository (%P), for messages.
        path: String,
    },
    /// Show notebook changes against a revision as cell source diffs, outputs summarized.
    Diff {
        /// The revision the working tree is compared with.
        #[arg(default_value = "HEAD", value_name = "GIT_REV")]
        rev: String,
        /// Print this notebook as text instead (git's `textconv` diff driver, registered by `hooks install`).
        #[arg(long, value_name = "NOTEBOOK", conflicts_with = "rev")]
        textconv: Option<PathBuf>,
    },
    /// Build a static HTML site from the notebooks: every notebook a page, the invariants linked to their evidence, the scorecard.
    Docs {
        /// The directory of the site (replaced whole by each build; never a directory it did not build).
        #[arg(long, short, default_value = caio_workbench::docs::DEFAULT_OUTPUT, value_name = "DIR")]
        output: PathBuf,
    },
    /// Install or remove the git hooks (pre-commit and pre-merge-commit: check; pre-push: validate) and the notebook merge and diff drivers.
    Hooks {
        #[command(subcommand)]
        action: HookAction,
    },
    /// Scaffold an invariant file and its verification notebook.
    NewInvariant {
        /// The id, such as INV-CAIO-0016.
        id: String,
        /// A short title.
        #[arg(long, default_value = "New invariant")]
        title: String,
    },
}

#[derive(Subcommand)]
enum AttestAction {
    /// Verify an attestation: its signature with a trusted public key, the digests of scorecard.json and every artifact in the tree, and the commit.
    Verify {
        /// The attestation (written by `scorecard --sign`).
        #[arg(default_value = caio_workbench::attest::DEFAULT_PATH)]
        attestation: PathBuf,
        /// The trusted public key (PEM, `openssl pkey -in KEY -pubout`).
        #[arg(long, value_name = "PUBLIC_KEY")]
        key: PathBuf,
        /// The commit it must attest (default: HEAD).
        #[arg(long, value_name = "GIT_REV")]
        commit: Option<String>,
    },
}

#[derive(Subcommand)]
enum HookAction {
    /// Install the hooks; a hook caio did not write is kept unless --force (then saved as .orig).
    Install {
        /// Replace foreign hooks, keeping them as <hook>.orig.
        #[arg(long)]
        force: bool,
    },
    /// Remove caio's hooks.
    Uninstall,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// The native runner: all cells compiled into one program.
    Native,
    /// evcxr, cell by cell, as in Jupyter.
    Evcxr,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Md,
    Html,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Write nothing; exit 1 if anything would change (outputs, artifacts, scorecard).
    #[arg(long)]
    check: bool,
    /// Notebooks run at once (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Seconds one notebook may run before it is stopped (at least 1).
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Bytes of text one cell may print (to stdout and to stderr each); the rest is dropped with a note.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    max_output: u64,
}

impl RunArgs {
    fn options(&self, quiet: bool) -> runner::Options {
        let mut options = runner::Options {
            check: self.check,
            timeout: Duration::from_secs(self.timeout),
            max_output: usize::try_from(self.max_output).unwrap_or(usize::MAX),
            quiet,
            ..runner::Options::default()
        };
        if let Some(jobs) = self.jobs {
            options.jobs = jobs.max(1);
        }
        options
    }
}

/// `run --engine evcxr`: every notebook through evcxr, compared cell by
/// cell with the outputs the native runner wrote.
fn run_evcxr(
    ws: &Workspace,
    files: &[caio_workbench::workspace::NotebookFile],
    env: &std::collections::BTreeMap<String, Vec<(String, String)>>,
    jobs: usize,
    quiet: bool,
    started: Instant,
) -> Result<()> {
    let progress = caio_workbench::progress::Progress::new("evcxr", files.len(), quiet);
    let reports = runner::evcxr::conformance(ws, files, env, jobs, &progress)?;
    progress.finish();
    let mut failed = 0;
    for report in &reports {
        println!("{:>7.1} s  {:>3} cells  {}", report.seconds, report.cells, report.notebook);
        for difference in &report.differences {
            println!("    {}: {difference}", report.notebook);
        }
        failed += usize::from(!report.differences.is_empty());
    }
    println!(
        "run --engine evcxr: {} notebooks, {failed} differ from the native runner ({:.1}s)",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        anyhow::bail!("{failed} notebooks do not run unchanged under evcxr (see above)");
    }
    Ok(())
}

/// A failure that exits with a code other than 1.
#[derive(Debug)]
struct Exit(u8, String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(error.downcast_ref::<Exit>().map_or(1, |e| e.0))
        }
    }
}

fn execute(cli: &Cli) -> Result<()> {
    // git runs these two on files of its own, wherever the workspace is.
    match &cli.command {
        Command::MergeDriver { generated, base, ours, theirs, path } => {
            let versions = caio_workbench::merge::Versions { base, ours, theirs, path };
            let report = if *generated {
                caio_workbench::merge::generated(versions)
            } else {
                caio_workbench::merge::notebook(versions).map_err(|e| Exit(2, e.to_string()))?
            };
            for conflict in &report.conflicts {
                eprintln!("caio merge: {path}: {conflict}");
            }
            if let Some(then) = &report.then {
                eprintln!("caio merge: {path}: {then}");
            }
            if !report.merged() {
                let n = report.conflicts.len();
                return Err(
                    Exit(1, format!("{path}: {n} conflict{} left to resolve", if n == 1 { "" } else { "s" })).into()
                );
            }
            return Ok(());
        }
        Command::Diff { textconv: Some(file), .. } => {
            print!("{}", caio_workbench::diff::textconv_file(file).map_err(|e| Exit(2, e.to_string()))?);
            return Ok(());
        }
        _ => {}
    }
    let ws = match &cli.workspace {
        Some(dir) => Workspace::open(dir),
        None => Workspace::discover(&std::env::current_dir()?),
    }
    .map_err(|e| Exit(2, e.to_string()))?;
    match &cli.command {
        Command::Extract { check, force } => {
            let started = Instant::now();
            let report = extract::run(&ws, extract::Options { check: *check, force: *force })?;
            for path in &report.pinned {
                println!("pinned the :dep versions of {path} to Cargo.lock");
            }
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
        Command::Run { run, engine, notebooks } => {
            let files = if notebooks.is_empty() { ws.notebooks()? } else { ws.notebook_args(notebooks)? };
            let started = Instant::now();
            let mut options = run.options(cli.quiet);
            // Verification notebooks get their digest, so the artifacts they write stay fresh.
            let invariants = verify::load_invariants(&ws)?;
            for file in &files {
                if let Some(mut env) = verify::environment(&ws, &invariants, &file.rel)? {
                    if run.check || *engine == Engine::Evcxr {
                        // --check writes nothing: artifacts go to a scratch directory.
                        let scratch = ws.path("target/caio-runner/check-artifacts");
                        env.retain(|(key, _)| key != verify::ARTIFACTS_DIR_ENV);
                        env.push((verify::ARTIFACTS_DIR_ENV.to_string(), scratch.to_string_lossy().into_owned()));
                    }
                    options.env.insert(file.rel.clone(), env);
                }
            }
            if *engine == Engine::Evcxr {
                return run_evcxr(&ws, &files, &options.env, options.jobs, cli.quiet, started);
            }
            let outcomes = runner::run(&ws, &files, &options)?;
            let changed = outcomes.iter().filter(|o| o.changed).count();
            println!(
                "run: {} notebooks ran, {changed} with new outputs ({:.1}s)",
                outcomes.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Verify { run, force } => {
            let started = Instant::now();
            let options = verify::Options { check: run.check, force: *force, runner: run.options(cli.quiet) };
            let report = verify::run(&ws, &options)?;
            println!(
                "verify: {} notebooks ran, {} fresh ({:.1}s)",
                report.ran.len(),
                report.fresh.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Scorecard { format, diff, check, sign, attestation } => {
            if sign.is_some() && (*check || diff.is_some() || !matches!(format, Format::Json)) {
                return Err(
                    Exit(2, "--sign signs scorecard.json: use it without --check, --diff and --format".into()).into()
                );
            }
            let card = scorecard::compute(&ws)?;
            if let Some(rev) = diff {
                let output = std::process::Command::new("git")
                    .args(["show", &format!("{rev}:scorecard.json")])
                    .current_dir(ws.root())
                    .output()?;
                if !output.status.success() {
                    return Err(Exit(
                        2,
                        format!(
                            "cannot read scorecard.json at `{rev}`: {}",
                            String::from_utf8_lossy(&output.stderr).trim()
                        ),
                    )
                    .into());
                }
                let old = scorecard::parse(&String::from_utf8_lossy(&output.stdout), &format!("{rev}:scorecard.json"))?;
                let changes = scorecard::diff(&old, &card);
                if changes.is_empty() {
                    println!("no change against {rev}");
                }
                for change in changes {
                    println!("{change}");
                }
                return Ok(());
            }
            match format {
                Format::Md => print!("{}", scorecard::to_markdown(&card)),
                Format::Html => print!("{}", scorecard::to_html(&card)),
                Format::Json if *check => scorecard::check(&ws, &card)?,
                Format::Json => {
                    let changed = scorecard::write(&ws, &card)?;
                    println!(
                        "scorecard: {}{}",
                        card.decision.word(),
                        if changed { " (scorecard.json updated)" } else { "" }
                    );
                    for reason in &card.reasons {
                        println!("  {reason}");
                    }
                    if let Some(key) = sign {
                        let output =
                            if attestation.is_absolute() { attestation.clone() } else { ws.root().join(attestation) };
                        let signed = caio_workbench::attest::sign(&ws, key, &output)?;
                        println!(
                            "signed: {} scorecard of commit {} and {} artifacts: {}",
                            signed.decision,
                            signed.commit,
                            signed.artifacts.len(),
                            output.display()
                        );
                    }
                }
            }
        }
        Command::Attest { action: AttestAction::Verify { attestation, key, commit } } => {
            let path = if attestation.is_absolute() { attestation.clone() } else { ws.root().join(attestation) };
            let verified = caio_workbench::attest::verify(&ws, &path, key, commit.as_deref())?;
            println!(
                "attest: the signature holds; scorecard.json ({}) and {} artifacts are the ones signed for commit {}",
                verified.decision, verified.artifacts, verified.commit
            );
        }
        Command::Gate { branch } => {
            let card = scorecard::compute(&ws)?;
            gate_step(&ws, branch.as_deref(), &card)?;
        }
        Command::Check { staged } => {
            let card = if *staged { scorecard::compute(&hooks::staged_copy(&ws)?)? } else { scorecard::compute(&ws)? };
            println!("check: {}", card.decision.word());
            for reason in &card.reasons {
                println!("  {reason}");
            }
            if card.decision == Decision::Red {
                anyhow::bail!("the evidence is broken or drifted (red); fix it before committing");
            }
        }
        Command::Mutants { only, jobs, timeout } => {
            let started = Instant::now();
            let options = mutants::Options {
                only: only.clone(),
                jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                timeout: Some(Duration::from_secs(*timeout)),
                quiet: cli.quiet,
            };
            let report = mutants::run(&ws, &options)?;
            let killed = report.outcomes.iter().filter(|o| o.killed).count();
            for outcome in report.outcomes.iter().filter(|o| !o.killed) {
                println!("survived: {} (must turn {} red)", outcome.name, outcome.kills.join(" or "));
            }
            println!(
                "mutants: {killed} of {} killed ({:.1}s){}",
                report.outcomes.len(),
                started.elapsed().as_secs_f64(),
                if report.wrote_artifact { "; mutation score written" } else { "" }
            );
            if killed < report.outcomes.len() {
                anyhow::bail!("{} mutants survived: the evidence does not notice them", report.outcomes.len() - killed);
            }
        }
        Command::Sbom { output, target, package } => {
            let output = if output.is_absolute() { output.clone() } else { ws.root().join(output) };
            let report = caio_workbench::sbom::write(&ws, package, target, &output)?;
            println!(
                "sbom: {} components of `{package}` for {target}, {} bytes: {}",
                report.components,
                report.bytes,
                output.display()
            );
            for (license, count) in &report.licenses {
                println!("  {count:>4}  {license}");
            }
        }
        Command::Licenses { target } => {
            let report = caio_workbench::licenses::run(&ws, target)?;
            for refusal in &report.refused {
                println!(
                    "refused: {} ({}): {}",
                    refusal.package,
                    refusal.license.as_deref().unwrap_or("no licence"),
                    refusal.reason
                );
            }
            let expressions = report.expressions.len();
            if !report.refused.is_empty() {
                return Err(Exit(
                    1,
                    format!("licenses: {} of {} packages refused by deny.toml", report.refused.len(), report.checked),
                )
                .into());
            }
            println!(
                "licenses: all {} packages allowed by deny.toml ({expressions} distinct licence expressions)",
                report.checked
            );
        }
        Command::Fuzz { minutes } => {
            let started = Instant::now();
            let rounds = caio_workbench::fuzz::run(&ws, Duration::from_secs(minutes * 60), |round| {
                if !cli.quiet {
                    println!(
                        "round {}: {} cases in {:.1}s ({:.0} per second)",
                        round.seed,
                        round.cases,
                        round.elapsed.as_secs_f64(),
                        round.cases as f64 / round.elapsed.as_secs_f64().max(1e-9)
                    );
                }
            })?;
            let cases: u64 = rounds.iter().map(|r| r.cases).sum();
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "fuzz: {} rounds, {cases} cases, no failure, {elapsed:.0}s ({:.0} cases per second, build included)",
                rounds.len(),
                cases as f64 / elapsed.max(1e-9)
            );
        }
        Command::Validate { run, branch, force } => validate(&ws, run, branch.as_deref(), *force, cli.quiet)?,
        Command::MergeDriver { .. } | Command::Diff { textconv: Some(_), .. } => unreachable!("handled above"),
        Command::Docs { output } => {
            let started = Instant::now();
            let output = if output.is_absolute() { output.clone() } else { ws.root().join(output) };
            let report = caio_workbench::docs::build(&ws, &output)?;
            println!(
                "docs: {} pages, {} files, {} bytes in {} ({:.2}s); open {}",
                report.pages.len(),
                report.files,
                report.bytes,
                output.display(),
                started.elapsed().as_secs_f64(),
                output.join("index.html").display()
            );
        }
        Command::Diff { rev, textconv: None } => {
            let changes = caio_workbench::diff::against(&ws, rev)?;
            for (path, text) in &changes {
                println!("{path}");
                print!("{text}");
            }
            println!("diff: {} notebooks differ from {rev}", changes.len());
        }
        Command::Hooks { action } => {
            let report = match action {
                HookAction::Install { force } => hooks::install(&ws, *force)?,
                HookAction::Uninstall => hooks::uninstall(&ws)?,
            };
            for (hook, what) in report {
                println!("{hook}: {what}");
            }
        }
        Command::NewInvariant { id, title } => {
            let (invariant, notebook) = scaffold::new_invariant(&ws, id, title)?;
            println!(
                "wrote {invariant}\nwrote {notebook}\nwrite the property in the notebook, then run `cargo xtask verify`"
            );
        }
    }
    Ok(())
}

/// Applies the gate; a configuration problem exits 2, a blocked branch 1.
fn gate_step(ws: &Workspace, branch: Option<&str>, card: &scorecard::Scorecard) -> Result<String> {
    let config = |e: caio_workbench::Error| Exit(2, e.to_string());
    let policy = gate::policy(ws).map_err(config)?;
    let branch = gate::branch(ws, branch).map_err(config)?;
    let verdict = gate::judge(&policy, &branch, card).map_err(config)?;
    let line = format!(
        "branch `{}` (rule `{}`) accepts {}; the scorecard is {}",
        verdict.branch,
        verdict.pattern,
        verdict.accept.word(),
        verdict.decision.word()
    );
    if verdict.passed {
        println!("gate: pass: {line}");
        Ok(line)
    } else {
        let reasons: Vec<String> = card.reasons.iter().map(|r| format!("\n  {r}")).collect();
        Err(Exit(1, format!("gate: blocked: {line}{}", reasons.concat())).into())
    }
}

/// Every check in order, each reported on one line; fails if any failed.
/// With `--check` nothing is written: stale evidence is an error instead of
/// being recomputed (what CI runs).
fn validate(ws: &Workspace, run: &RunArgs, branch: Option<&str>, force: bool, quiet: bool) -> Result<()> {
    let started = Instant::now();
    // What else shapes the outcome: the mode, the branch the gate judges, the limits.
    let context = gate::branch(ws, branch).ok().map(|branch| {
        format!("check={} branch={branch} timeout={} max_output={}", run.check, run.timeout, run.max_output)
    });
    let fingerprint = |context: &Option<String>| context.as_ref().and_then(|c| stamp::fingerprint(ws, c).ok());
    if force {
        stamp::forget(ws);
    } else if let Some(before) = fingerprint(&context)
        && stamp::passed_before(ws, &before)
    {
        println!(
            "validate: nothing changed since the last validate that passed ({} files, the workbench and the toolchain compared in {:.2}s); `--force` runs every step",
            before.files,
            started.elapsed().as_secs_f64()
        );
        println!("validate: ok");
        return Ok(());
    }
    let mut failures = Vec::new();
    let mut times: Vec<(String, f64)> = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Result<String>| {
        let started = Instant::now();
        let (status, detail) = match f() {
            Ok(detail) => ("ok", detail),
            Err(e) => {
                failures.push(format!("{name}:\n{e}"));
                ("FAILED", String::new())
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        println!("{name:<16} {status:<7} {seconds:>7.2}s  {detail}");
        times.push((name.to_owned(), seconds));
    };
    step("extract --check", &mut || {
        Ok(extract::run(ws, extract::Options { check: true, force: false })
            .map(|r| format!("{} generated files", r.unchanged))?)
    });
    step("clean --check", &mut || {
        Ok(clean::run(ws, &[], clean::Options { check: true }).map(|_| "notebooks clean".to_owned())?)
    });
    let options = runner::Options { check: true, ..run.options(quiet) };
    step("run --check", &mut || {
        // Verification notebooks are run by `verify`, with their digests.
        let files: Vec<_> = ws.notebooks()?.into_iter().filter(|f| !f.is_verification()).collect();
        Ok(runner::run(ws, &files, &options).map(|o| format!("{} notebooks executed, outputs current", o.len()))?)
    });
    let verify_options = verify::Options { check: run.check, force: false, runner: run.options(quiet) };
    step(if run.check { "verify --check" } else { "verify" }, &mut || {
        let report = verify::run(ws, &verify_options)?;
        Ok(format!("{} notebooks ran, {} fresh", report.ran.len(), report.fresh.len()))
    });
    let mut card = None;
    step(if run.check { "scorecard --check" } else { "scorecard" }, &mut || {
        let computed = scorecard::compute(ws)?;
        if run.check {
            scorecard::check(ws, &computed)?;
        } else {
            scorecard::write(ws, &computed)?;
        }
        let word = computed.decision.word();
        card = Some(computed);
        Ok(word.to_string())
    });
    step("gate", &mut || match &card {
        Some(card) => gate_step(ws, branch, card),
        None => anyhow::bail!("no scorecard to judge"),
    });
    let spent: Vec<String> = times.iter().map(|(name, seconds)| format!("{name} {seconds:.2}s")).collect();
    println!("validate: {:.2}s: {}", started.elapsed().as_secs_f64(), spent.join(", "));
    if failures.is_empty() {
        // The state after the steps (they may have written evidence) is the one that passed.
        if let Some(after) = fingerprint(&context) {
            stamp::record_pass(ws, &after)?;
        }
        println!("validate: ok");
        Ok(())
    } else {
        stamp::forget(ws);
        anyhow::bail!("validate failed:\n{}", failures.join("\n"))
    }
}
