//! `caio serve` replicas for the scale-out test and benchmark: real
//! processes on loopback ports, on one store (and one Redis), each with its
//! log in a file.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `caio serve`, killed on drop.
pub struct Replica {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Replica {
    /// Starts `caio serve --config <config>`, its log (JSON lines) in `log`,
    /// and waits for the line that says where it listens.
    pub fn start(config: &Path, log: &Path) -> Replica {
        Replica::start_with(config, log, &[])
    }

    /// The same, with variables set in its environment (`None`: removed).
    pub fn start_with(config: &Path, log: &Path, environment: &[(&str, Option<&str>)]) -> Replica {
        let log_file = std::fs::File::create(log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_caio"));
        for (name, value) in environment {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(config)
            .env("CAIO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("caio listening on ").map(str::to_string).unwrap_or_else(|| {
            panic!("unexpected first line {line:?}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default())
        });
        Replica { child, url, log: log.to_path_buf() }
    }

    /// Lines of its log that contain `text`.
    pub fn log_lines(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains(text)).count()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` replicas at once (they seed the empty store together).
pub fn start(n: usize, config: &Path, dir: &Path) -> Vec<Replica> {
    let starting: Vec<_> = (0..n)
        .map(|i| {
            let (config, log) = (config.to_path_buf(), dir.join(format!("replica-{i}.log")));
            std::thread::spawn(move || Replica::start(&config, &log))
        })
        .collect();
    starting.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A development token (published keys: tests only).
pub fn token(sub: &str, permissions: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_caio"));
    command.args(["token", "--sub", sub, "--trust-level", "1"]).current_dir(root()).stderr(Stdio::null());
    for permission in permissions {
        command.args(["--permission", permission]);
    }
    String::from_utf8(command.output().unwrap().stdout).unwrap().trim().to_string()
}

/// A chat contract for an OpenAI-compatible server at `base`.
pub fn chat_contract(id: &str, base: &str, per_request_usd: f64) -> String {
    format!(
        "id: {id}\nversion: 1.0.0\ncapabilities: [chat]\ncost: {{ per_request: {per_request_usd}, per_1k_tokens: 0 }}\n\
         privacy: {{ data_locality: local }}\nsecurity: {{ required_permissions: [chat.basic] }}\n\
         api: {{ adapter: openai, endpoint: \"{base}\", model: tiny, timeout_ms: 5000 }}\n"
    )
}
