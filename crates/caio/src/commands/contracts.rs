//! `caio contracts check`: every contract file of a directory, each
//! problem at its file and field path, and ids used by two files.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use caio_calculus::contract::{Format, parse_contracts};

use crate::Outcome;
use crate::config::contract_files;

/// Checks and prints one line per file.
pub fn check(dir: &Path) -> Result<Outcome> {
    let files = contract_files(dir)?;
    if files.is_empty() {
        anyhow::bail!("{}: no contract files (.yaml, .yml, .json)", dir.display());
    }
    let mut problems = 0;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for path in &files {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                println!("{shown}: cannot read: {e}");
                problems += 1;
                continue;
            }
        };
        match parse_contracts(&text, Format::from_file_name(&shown)) {
            Ok(contracts) => {
                let mut clash = false;
                for contract in &contracts {
                    let key = format!("{}@{}", contract.id, contract.version);
                    if let Some(other) = seen.insert(key.clone(), shown.clone()) {
                        println!("{shown}: {key} is also defined in {other}");
                        clash = true;
                    }
                }
                if clash {
                    problems += 1;
                } else {
                    println!(
                        "{shown}: ok ({} contract{})",
                        contracts.len(),
                        if contracts.len() == 1 { "" } else { "s" }
                    );
                }
            }
            Err(e) => {
                println!("{shown}: {e}");
                problems += 1;
            }
        }
    }
    if problems == 0 {
        println!("{} files, all valid", files.len());
        Ok(Outcome::Done)
    } else {
        println!("{problems} of {} files have problems", files.len());
        Ok(Outcome::Problems)
    }
}
