//! A `redis-server` of its own on a free loopback port, without
//! persistence; it can be stopped and started again on the same port, to
//! test what clients do while it is away.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{find_binary, free_port, stop, tail};

/// A Redis server, stopped on drop.
#[derive(Debug)]
pub struct Redis {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Whether the binary is installed.
    pub fn installed() -> bool {
        find_binary("redis-server", &[PathBuf::from("/usr/bin")]).is_some()
    }

    /// Starts a server.
    pub fn start() -> Result<Redis, String> {
        let binary = find_binary("redis-server", &[PathBuf::from("/usr/bin")])
            .ok_or("Redis is not installed (no redis-server; Debian: apt-get install redis-server)")?;
        let dir = tempfile::Builder::new().prefix("caio-redis-").tempdir().map_err(|e| e.to_string())?;
        let mut redis = Redis { binary, child: None, port: free_port()?, dir };
        redis.resume()?;
        Ok(redis)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: as if its machine went away).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, "KILL");
        }
    }

    /// Starts it again on the same port, empty.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = self.dir.path().join("redis.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let client = ::redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ping = client.get_connection().and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c));
            match ping {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("Redis did not start: {e}\n{}", tail(&log))),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
