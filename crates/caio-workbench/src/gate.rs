//! `cargo xtask gate`: whether the scorecard is good enough for a branch.
//!
//! The policy is `gate.toml` at the workspace root: an ordered list of
//! branch patterns, each with the worst decision it accepts; the first
//! pattern that matches wins. Without the file, the default policy applies:
//! `main` and `staging` need green (every artifact present, fresh and
//! passing), every other branch accepts yellow. Red is never accepted.
//!
//! The branch comes from `--branch`, else the CI environment, else git.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::scorecard::{Decision, Scorecard};
use crate::workspace::Workspace;

/// One rule of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchRule {
    /// A branch name; `*` matches any run of characters (`release/*`).
    pub pattern: String,
    /// The worst decision this branch accepts: `green` or `yellow`.
    pub accept: Decision,
}

/// The gate policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Rules, first match wins.
    pub branch: Vec<BranchRule>,
}

impl Default for Policy {
    fn default() -> Self {
        let rule = |pattern: &str, accept| BranchRule { pattern: pattern.into(), accept };
        Policy {
            branch: vec![rule("main", Decision::Green), rule("staging", Decision::Green), rule("*", Decision::Yellow)],
        }
    }
}

/// Reads `gate.toml`, or the default policy when there is none.
pub fn policy(ws: &Workspace) -> Result<Policy> {
    let path = ws.path("gate.toml");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Policy::default()) };
    let policy: Policy = toml::from_str(&text)
        .map_err(|e| Error::File { path: "gate.toml".into(), message: format!("invalid policy: {}", e.message()) })?;
    if let Some(rule) = policy.branch.iter().find(|r| r.accept == Decision::Red) {
        return Err(Error::File {
            path: "gate.toml".into(),
            message: format!("branch `{}` accepts red: a gate that accepts red checks nothing", rule.pattern),
        });
    }
    Ok(policy)
}

/// Glob match with `*` only.
pub fn matches(pattern: &str, branch: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == branch;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !branch.starts_with(first) || !branch[first.len()..].ends_with(last) || branch.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &branch[first.len()..branch.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Environment variables CI systems set to the branch being built.
const CI_BRANCH_VARIABLES: &[&str] =
    &["CAIO_BRANCH", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BUILDKITE_BRANCH", "BRANCH_NAME"];

/// The branch: the flag, else the CI environment, else `git`.
pub fn branch(ws: &Workspace, flag: Option<&str>) -> Result<String> {
    if let Some(branch) = flag {
        if branch.trim().is_empty() {
            // An empty name would match a `*` rule and pass any gate.
            return Err(Error::File { path: "--branch".into(), message: "must name a branch".into() });
        }
        return Ok(branch.to_string());
    }
    for variable in CI_BRANCH_VARIABLES {
        if let Ok(value) = std::env::var(variable)
            && !value.trim().is_empty()
        {
            return Ok(value.trim().to_string());
        }
    }
    let output =
        std::process::Command::new("git").args(["rev-parse", "--abbrev-ref", "HEAD"]).current_dir(ws.root()).output();
    match output {
        Ok(out) if out.status.success() => {
            let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if name == "HEAD" {
                Err(Error::File {
                    path: ".".into(),
                    message: "cannot tell the branch (detached HEAD): pass --branch".into(),
                })
            } else {
                Ok(name)
            }
        }
        _ => Err(Error::File {
            path: ".".into(),
            message: "cannot tell the branch (not a git checkout?): pass --branch".into(),
        }),
    }
}

/// The verdict of the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The branch judged.
    pub branch: String,
    /// The rule that applied.
    pub pattern: String,
    /// What it accepts.
    pub accept: Decision,
    /// What the scorecard says.
    pub decision: Decision,
    /// Whether the branch may be promoted.
    pub passed: bool,
}

/// Applies the policy to a scorecard for a branch.
pub fn judge(policy: &Policy, branch: &str, card: &Scorecard) -> Result<Verdict> {
    let rule = policy.branch.iter().find(|r| matches(&r.pattern, branch)).ok_or_else(|| Error::File {
        path: "gate.toml".into(),
        message: format!("no rule matches branch `{branch}`; add a final `pattern = \"*\"` rule"),
    })?;
    Ok(Verdict {
        branch: branch.to_string(),
        pattern: rule.pattern.clone(),
        accept: rule.accept,
        decision: card.decision,
        passed: card.decision <= rule.accept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches("main", "main") && !matches("main", "main2"));
        assert!(matches("*", "feature/x") && matches("release/*", "release/1.2") && !matches("release/*", "hotfix/1"));
        assert!(matches("feat*-wip", "feature-x-wip") && !matches("feat*-wip", "feature-x"));
        assert!(matches("a*b*c", "aXbYc") && !matches("a*b*c", "acb"));
    }

    #[test]
    fn the_default_policy_needs_green_on_main_only() {
        let card = |decision| Scorecard { decision, reasons: vec![], gates: vec![], invariants: vec![] };
        let policy = Policy::default();
        assert!(judge(&policy, "main", &card(Decision::Green)).unwrap().passed);
        assert!(!judge(&policy, "main", &card(Decision::Yellow)).unwrap().passed);
        assert!(!judge(&policy, "staging", &card(Decision::Yellow)).unwrap().passed);
        assert!(judge(&policy, "feature/x", &card(Decision::Yellow)).unwrap().passed);
        assert!(!judge(&policy, "feature/x", &card(Decision::Red)).unwrap().passed);
    }
}
