//! Git hooks in a real repository, and the invariant scaffold.

mod support;

use std::process::Command;

use caio_workbench::scorecard::{self, Decision};
use caio_workbench::{Workspace, hooks, scaffold, verify};
use support::{read, workspace};

fn git_repo() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status().unwrap();
    assert!(status.success());
    let ws = Workspace::new(dir.path());
    (dir, ws)
}

#[test]
fn hooks_install_twice_harmlessly_and_uninstall_only_their_own() {
    let (dir, ws) = git_repo();
    let hooks_dir = dir.path().join(".git/hooks");
    let installed = hooks::install(&ws, false).unwrap();
    let expected = [
        ("pre-commit", "installed"),
        ("pre-merge-commit", "installed"),
        ("pre-push", "installed"),
        ("merge and diff drivers", "installed"),
        (".gitattributes", "updated (commit it)"),
    ];
    assert_eq!(installed, expected.map(|(n, w)| (n.to_string(), w)));
    for hook in ["pre-commit", "pre-merge-commit"] {
        let script = std::fs::read_to_string(hooks_dir.join(hook)).unwrap();
        assert!(script.ends_with("exec cargo xtask check --staged\n"), "{script}");
    }
    let config = |key: &str| {
        let output = Command::new("git").args(["config", "--get", key]).current_dir(dir.path()).output().unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(config("merge.caio-generated.driver"), "cargo xtask merge-driver --generated %O %A %B %P");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitattributes")).unwrap(),
        "# Notebooks merge and diff cell by cell; generated files are regenerated (`cargo xtask hooks install`).\n*.ipynb merge=caio-notebook diff=caio-notebook\nartifacts/*.json merge=caio-generated\nscorecard.json merge=caio-generated\n"
    );
    assert!(std::fs::read_to_string(hooks_dir.join("pre-push")).unwrap().ends_with("exec cargo xtask validate\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(hooks_dir.join("pre-commit")).unwrap().permissions().mode() & 0o111, 0o111);
    }
    let again = hooks::install(&ws, false).unwrap();
    assert!(again[..4].iter().all(|(_, what)| *what == "already installed"), "{again:?}");
    assert_eq!(again[4], (".gitattributes".to_string(), "already routes notebooks and generated files"));
    let removed = hooks::uninstall(&ws).unwrap();
    assert!(removed.iter().all(|(_, what)| *what == "removed"), "{removed:?}");
    assert!(!hooks_dir.join("pre-commit").exists());
    assert_eq!(config("merge.caio-notebook.driver"), "", "the drivers are gone from .git/config");
    assert!(dir.path().join(".gitattributes").exists(), ".gitattributes is the repository's and stays");
}

#[test]
fn a_foreign_hook_is_never_overwritten_silently() {
    let (dir, ws) = git_repo();
    let hook = dir.path().join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let error = hooks::install(&ws, false).unwrap_err().to_string();
    assert!(error.starts_with(".git/hooks/pre-commit: is a hook caio did not write;"), "{error}");
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
    assert!(!dir.path().join(".git/hooks/pre-push").exists(), "nothing is installed when one hook is foreign");
    hooks::install(&ws, true).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".git/hooks/pre-commit.orig")).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    assert_eq!(hooks::uninstall(&ws).unwrap()[0].1, "removed");
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    assert_eq!(hooks::uninstall(&ws).unwrap()[0].1, "left alone (not caio's)");
}

#[test]
fn new_invariant_scaffolds_a_valid_file_and_a_notebook_that_cannot_pass() {
    let (_dir, ws) = workspace("evidence");
    let (invariant, notebook) = scaffold::new_invariant(&ws, "INV-DEMO-0003", "Something new").unwrap();
    assert_eq!(
        (invariant.as_str(), notebook.as_str()),
        ("invariants/INV-DEMO-0003.yaml", "notebooks/verify/inv_demo_0003.ipynb")
    );
    let loaded = verify::load_invariants(&ws).unwrap();
    assert!(loaded.iter().any(|i| i.invariant.id == "INV-DEMO-0003" && i.invariant.notebook == notebook));
    let text = read(&ws, &notebook);
    assert!(text.contains("the property of INV-DEMO-0003 is not written yet"), "the scaffold fails every case");
    caio_notebook::Notebook::parse(&text).unwrap().check_rust_kernel().unwrap();
    let again = scaffold::new_invariant(&ws, "INV-DEMO-0003", "Again").unwrap_err().to_string();
    assert_eq!(again, "invariants/INV-DEMO-0003.yaml: already exists; pick another id or edit it");
    assert!(scaffold::new_invariant(&ws, "inv-1", "x").is_err());
}

#[test]
fn new_invariant_quotes_any_title_and_refuses_what_cannot_be_one_line() {
    let (_dir, ws) = workspace("evidence");
    let title = "Latency: p99 bound # \"quoted\" - [x]";
    let (invariant, _) = scaffold::new_invariant(&ws, "INV-DEMO-0009", title).unwrap();
    let loaded = verify::load_invariants(&ws).unwrap_or_else(|e| panic!("the scaffolded file must load: {e}"));
    let scaffolded = loaded.iter().find(|i| i.path == invariant).unwrap();
    assert_eq!(scaffolded.invariant.title, title);
    let error = scaffold::new_invariant(&ws, "INV-DEMO-0010", "two\nlines").unwrap_err().to_string();
    assert_eq!(error, "invariants: the title must be one non-empty line");
    assert!(!ws.path("invariants/INV-DEMO-0010.yaml").exists(), "nothing is written");
}

fn git(ws: &Workspace, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(ws.root())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn pre_commit_judges_what_is_staged_not_the_working_tree() {
    let (_dir, ws) = workspace("workspace");
    git(&ws, &["init", "-q"]);
    std::fs::write(ws.path(".gitignore"), "/target\n").unwrap();
    caio_workbench::extract::run(&ws, Default::default()).unwrap();
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "extracted"]);
    assert_ne!(scorecard::compute(&hooks::staged_copy(&ws).unwrap()).unwrap().decision, Decision::Red);

    // Stage an edited notebook without its regenerated file, then
    // regenerate in the working tree only: the tree is in step, the commit
    // would not be.
    let notebook = ws.path("notebooks/shapes.ipynb");
    let text = read(&ws, "notebooks/shapes.ipynb").replace("pi r squared", "pi times r squared");
    std::fs::write(&notebook, text).unwrap();
    git(&ws, &["add", "notebooks/shapes.ipynb"]);
    caio_workbench::extract::run(&ws, Default::default()).unwrap();
    assert_ne!(scorecard::compute(&ws).unwrap().decision, Decision::Red, "the working tree is in step");
    let staged = scorecard::compute(&hooks::staged_copy(&ws).unwrap()).unwrap();
    assert_eq!(staged.decision, Decision::Red);
    assert!(
        staged.reasons.iter().any(|r| r.contains("crates/demo/src/shapes.rs")),
        "the staged drift is named: {:?}",
        staged.reasons
    );
    // The installed pre-commit hook runs exactly that check.
    hooks::install(&ws, false).unwrap();
    assert!(read(&ws, ".git/hooks/pre-commit").contains("exec cargo xtask check --staged"));
}
