//! The notebook merge driver through real git: two branches of a real
//! repository edit the same notebook, `git merge` calls `cargo xtask
//! merge-driver` (this test's xtask binary, registered the way `hooks
//! install` registers it), and the result is checked as a notebook.
//!
//! Run with `--nocapture` to see each merge's transcript.

use std::path::PathBuf;
use std::process::{Command, Output};

mod support;
use support::{copy, text};

struct Repo {
    dir: tempfile::TempDir,
}

const NOTEBOOK: &str = "notebooks/shapes.ipynb";
const GENERATED: &str = "crates/demo/src/shapes.rs";

impl Repo {
    /// The fixture workspace, extracted and committed on `main`, with the
    /// drivers installed by `hooks install` and then pointed at this
    /// binary (the temporary repository has no `cargo xtask` alias).
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        copy(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/workspace"), dir.path());
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.path(".gitignore"), "/target\n").unwrap();
        assert!(repo.xtask(&["extract"]).status.success());
        let installed = repo.xtask(&["hooks", "install"]);
        assert!(installed.status.success(), "{}", text(&installed.stderr));
        let report = text(&installed.stdout);
        assert!(report.contains("merge and diff drivers: installed"), "{report}");
        assert!(report.contains(".gitattributes: updated (commit it)"), "{report}");
        let attributes = repo.read(".gitattributes");
        for line in [
            "*.ipynb merge=caio-notebook diff=caio-notebook",
            "crates/demo/src/** merge=caio-generated",
            "artifacts/*.json merge=caio-generated",
            "scorecard.json merge=caio-generated",
        ] {
            assert!(attributes.lines().any(|l| l == line), "{line} missing from .gitattributes:\n{attributes}");
        }
        assert_eq!(repo.config("merge.caio-notebook.driver"), "cargo xtask merge-driver %O %A %B %P");
        assert_eq!(repo.config("diff.caio-notebook.textconv"), "cargo xtask diff --textconv");
        let again = text(&repo.xtask(&["hooks", "install"]).stdout);
        assert!(again.contains("merge and diff drivers: already installed"), "{again}");
        assert!(again.contains(".gitattributes: already routes"), "{again}");
        let bin = env!("CARGO_BIN_EXE_xtask");
        repo.git(&["config", "merge.caio-notebook.driver", &format!("{bin} merge-driver %O %A %B %P")]);
        repo.git(&["config", "merge.caio-generated.driver", &format!("{bin} merge-driver --generated %O %A %B %P")]);
        repo.git(&["config", "diff.caio-notebook.textconv", &format!("{bin} diff --textconv")]);
        assert_eq!(repo.config("diff.caio-notebook.xfuncname"), "^# %% cell .*$");
        repo.commit("base");
        repo
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let old = self.read(rel);
        assert!(old.contains(from), "{rel} does not contain {from:?}");
        std::fs::write(self.path(rel), old.replacen(from, to, 1)).unwrap();
    }

    fn run_git(&self, args: &[&str]) -> Output {
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        let output = self.run_git(args);
        assert!(output.status.success(), "git {args:?}: {}", text(&output.stderr));
        text(&output.stdout)
    }

    fn config(&self, key: &str) -> String {
        self.git(&["config", "--get", key]).trim().to_owned()
    }

    fn xtask(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--workspace").arg(self.dir.path()).args(args).output().unwrap()
    }

    /// Commits everything; the hooks are skipped (they call `cargo xtask`,
    /// which this repository has no alias for).
    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-verify", "-m", message]);
    }

    /// Two branches from main, each edited by its closure and committed;
    /// then `a` merges `b`. Returns the merge's output, printed as a transcript.
    fn merge(&self, a: impl FnOnce(&Repo), b: impl FnOnce(&Repo)) -> Output {
        self.git(&["checkout", "-q", "-b", "b"]);
        b(self);
        self.commit("b");
        self.git(&["checkout", "-q", "-b", "a", "main"]);
        a(self);
        self.commit("a");
        let output = self.run_git(&["merge", "--no-verify", "--no-edit", "b"]);
        println!("$ git merge b\n{}{}(exit {:?})", text(&output.stdout), text(&output.stderr), output.status.code());
        output
    }

    /// The notebook through the driver's own reader: fails unless it is a
    /// valid notebook.
    fn cells(&self) -> String {
        let output = self.xtask(&["diff", "--textconv", &self.path(NOTEBOOK).display().to_string()]);
        assert!(output.status.success(), "the merged notebook is not valid: {}", text(&output.stderr));
        text(&output.stdout)
    }
}

#[test]
fn edits_to_different_cells_merge_cleanly() {
    let repo = Repo::new();
    let output = repo.merge(
        |a| {
            // The first markdown cell is the module's documentation.
            a.edit(NOTEBOOK, "Areas of shapes, for extraction tests.", "Areas of plane shapes, for extraction tests.");
            assert!(a.xtask(&["extract"]).status.success());
        },
        |b| b.edit(NOTEBOOK, "let s = Square { side: 3.0 };", "let s = Square { side: 4.0 };"),
    );
    assert!(output.status.success(), "a clean merge");
    let cells = repo.cells();
    assert!(cells.contains("Areas of plane shapes") && cells.contains("side: 4.0"), "{cells}");
    assert!(!repo.read(NOTEBOOK).contains("<<<<<<<"));
    assert!(repo.xtask(&["extract", "--check"]).status.success());
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "merged and committed");
}

#[test]
fn exported_cells_changed_on_both_sides_merge_and_name_what_to_regenerate() {
    let repo = Repo::new();
    let output = repo.merge(
        |a| {
            a.edit(NOTEBOOK, "// pi r squared", "// pi times r squared");
            assert!(a.xtask(&["extract"]).status.success());
        },
        |b| {
            b.edit(
                NOTEBOOK,
                "pub(crate) fn twice(x: f64) -> f64 { x * 2.0 }",
                "pub(crate) fn twice(x: f64) -> f64 { x + x }",
            );
            assert!(b.xtask(&["extract"]).status.success());
        },
    );
    assert!(!output.status.success(), "the generated file is a conflict");
    let said = text(&output.stdout) + &text(&output.stderr);
    assert!(said.contains(&format!("caio merge: {GENERATED}: generated, so not merged as text")), "{said}");
    assert!(said.contains("run `cargo xtask extract`"), "{said}");
    let status = repo.git(&["status", "--porcelain"]);
    assert!(status.contains(&format!("UU {GENERATED}")), "{status}");
    assert!(status.contains(&format!("M  {NOTEBOOK}")), "the notebook merged cleanly: {status}");
    let cells = repo.cells();
    assert!(cells.contains("pi times r squared") && cells.contains("x + x"), "{cells}");
    // Ours is left as generated, never with markers.
    assert!(!repo.read(GENERATED).contains("<<<<<<<"));
    let check = repo.xtask(&["extract", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    let said = text(&check.stderr);
    println!("$ cargo xtask extract --check\n{said}");
    assert!(said.contains(GENERATED), "extract --check names the file to regenerate: {said}");
    assert!(repo.xtask(&["extract"]).status.success());
    assert!(repo.xtask(&["extract", "--check"]).status.success());
    let generated = repo.read(GENERATED);
    assert!(generated.contains("pi times r squared") && generated.contains("x + x"), "{generated}");
    repo.commit("merged");
}

#[test]
fn the_same_lines_changed_on_both_sides_give_a_valid_notebook_with_markers() {
    let repo = Repo::new();
    let output = repo.merge(
        |a| a.edit(NOTEBOOK, "// pi r squared", "// pi times r squared"),
        |b| b.edit(NOTEBOOK, "// pi r squared", "// the area of the disc"),
    );
    assert!(!output.status.success());
    let said = text(&output.stdout) + &text(&output.stderr);
    assert!(said.contains("cell `shapes-3`: both sides changed the same lines of its source"), "{said}");
    assert!(said.contains(&format!("CONFLICT (content): Merge conflict in {NOTEBOOK}")), "{said}");
    let cells = repo.cells();
    let expected = "# %% cell 4 `merge-conflict-shapes-3` (markdown)\n**Merge conflict** in the next cell: both branches changed the same lines.";
    assert!(cells.contains(expected), "{cells}");
    let conflict = "<<<<<<< ours\n    // pi times r squared\n=======\n    // the area of the disc\n>>>>>>> theirs\n";
    assert!(cells.contains(&format!("# %% cell 5 `shapes-3` (code)\n//| export\n// Why: circles are measured by radius.\npub fn circle_area(radius: f64) -> f64 {{\n{conflict}")), "{cells}");
    // Every other cell is as it was.
    assert!(cells.contains("let s = Square { side: 3.0 };"));
    assert!(repo.git(&["status", "--porcelain"]).contains(&format!("UU {NOTEBOOK}")));
}

#[test]
fn outputs_never_conflict_and_combined_code_is_marked_for_a_rerun() {
    let repo = Repo::new();
    let ran = |side: &'static str| {
        move |r: &Repo| {
            r.edit(
                NOTEBOOK,
                "\"execution_count\": null,\n   \"id\": \"shapes-6\",\n   \"metadata\": {},\n   \"outputs\": [],",
                &format!(
                    "\"execution_count\": 1,\n   \"id\": \"shapes-6\",\n   \"metadata\": {{}},\n   \"outputs\": [\n    {{\n     \"name\": \"stdout\",\n     \"output_type\": \"stream\",\n     \"text\": [\n      \"run on {side}\\n\"\n     ]\n    }}\n   ],"
                ),
            )
        }
    };
    // Outputs only, different on both sides: merged, ours kept.
    let output = repo.merge(ran("ours"), ran("theirs"));
    assert!(output.status.success(), "outputs alone never conflict");
    let notebook = repo.read(NOTEBOOK);
    assert!(notebook.contains("run on ours") && !notebook.contains("run on theirs"));
    assert!(notebook.contains("\"execution_count\": 1,"), "the code is ours, so its outputs and counts stand");

    // Outputs on one side, code on the other: the merged code is theirs, so
    // are the outputs (ours were computed from code that is gone).
    let again = |repo: &Repo| {
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["branch", "-q", "-D", "a", "b"]);
    };
    again(&repo);
    let output = repo.merge(ran("ours"), |b| b.edit(NOTEBOOK, "// pi r squared", "// pi times r squared"));
    assert!(output.status.success());
    assert!(!text(&output.stderr).contains("stale"), "the result is theirs, outputs and all");
    assert!(!repo.read(NOTEBOOK).contains("run on ours"));

    // Code changed on both sides (in different cells): merged, outputs kept
    // where a cell's code is a side's, counts cleared, the driver says to re-run.
    again(&repo);
    let output = repo.merge(
        |a| {
            ran("ours")(a);
            a.edit(NOTEBOOK, "{ x * 2.0 }", "{ 2.0 * x }");
        },
        |b| b.edit(NOTEBOOK, "// pi r squared", "// pi times r squared"),
    );
    assert!(output.status.success());
    let said = text(&output.stderr);
    assert!(said.contains("outputs are stale: run `cargo xtask run notebooks/shapes.ipynb`"), "{said}");
    let notebook = repo.read(NOTEBOOK);
    assert!(notebook.contains("run on ours"), "outputs are kept where the cell's code did not change");
    assert!(!notebook.contains("\"execution_count\": 1"), "the notebook reads as not run");
    let cells = repo.cells();
    assert!(cells.contains("pi times r squared") && cells.contains("2.0 * x"), "{cells}");
}

#[test]
fn a_notebook_git_cannot_parse_is_left_alone_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.display().to_string()
    };
    let base = file("base", "{\"cells\": [], \"metadata\": {}, \"nbformat\": 4, \"nbformat_minor\": 5}");
    let ours = file("ours", "{\"cells\": [,]}");
    let theirs = file("theirs", "{\"cells\": [], \"metadata\": {}, \"nbformat\": 4, \"nbformat_minor\": 5}");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["merge-driver", &base, &ours, &theirs, "notebooks/x.ipynb"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = text(&output.stderr);
    assert!(said.starts_with("error: notebooks/x.ipynb: ours is not a valid notebook (line 1, column 12:"), "{said}");
    assert_eq!(std::fs::read_to_string(&ours).unwrap(), "{\"cells\": [,]}", "ours is untouched");
}

#[test]
fn git_diff_reads_notebooks_as_cells() {
    let repo = Repo::new();
    repo.edit(NOTEBOOK, "// pi r squared", "// pi times r squared");
    let diff = repo.git(&["diff"]);
    assert!(diff.contains("-    // pi r squared\n+    // pi times r squared\n"), "{diff}");
    // The hunk header names the cell (the driver's xfuncname).
    assert!(diff.contains("@@ # %% cell 4 `shapes-3` (code)\n"), "{diff}");
    assert!(!diff.contains("\\n\","), "no JSON in the diff: {diff}");
    let review = repo.xtask(&["diff"]);
    assert!(review.status.success(), "{}", text(&review.stderr));
    let review = text(&review.stdout);
    println!("$ cargo xtask diff\n{review}");
    assert!(review.starts_with(&format!("{NOTEBOOK}\ncell 4 `shapes-3` (code): source changed\n")), "{review}");
    assert!(review.contains("-    // pi r squared\n    +    // pi times r squared"), "{review}");
    assert!(review.ends_with("diff: 1 notebooks differ from HEAD\n"), "{review}");
    let bad = repo.xtask(&["diff", "no-such-rev"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("`no-such-rev` is not a commit of this repository"));
}
