//! A PostgreSQL cluster of its own: `initdb` into a temporary directory,
//! `postgres` on a free loopback port with trust authentication for the
//! user `caio`, one fresh database per [`Postgres::database`].

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::process::{find_binary, free_port, is_root, stop, tail, user_ids};

/// A running PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    port: u16,
    /// The data directory and the log, deleted when the server is.
    _dir: tempfile::TempDir,
    databases: AtomicUsize,
}

/// Where the distribution puts the server's binaries (Debian and Ubuntu:
/// `/usr/lib/postgresql/<major>/bin`, newest first).
fn binary_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    dirs.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    std::env::var_os("CAIO_PG_BIN").map(PathBuf::from).into_iter().chain(dirs.into_iter().map(|(_, d)| d)).collect()
}

impl Postgres {
    /// Whether the binaries are installed.
    pub fn installed() -> bool {
        let dirs = binary_dirs();
        find_binary("initdb", &dirs).is_some() && find_binary("postgres", &dirs).is_some()
    }

    /// Starts a server with `fsync` off: for tests, where durability across
    /// a power loss is not what is tested.
    pub fn start() -> Result<Postgres, String> {
        Postgres::start_with(false)
    }

    /// Starts a server, with every commit synced to disk when `durable`
    /// (PostgreSQL's defaults, for benchmarks).
    pub fn start_with(durable: bool) -> Result<Postgres, String> {
        let dirs = binary_dirs();
        let (Some(initdb), Some(postgres)) = (find_binary("initdb", &dirs), find_binary("postgres", &dirs)) else {
            return Err(
                "PostgreSQL is not installed (no initdb and postgres; Debian: apt-get install postgresql)".into()
            );
        };
        let dir = tempfile::Builder::new().prefix("caio-pg-").tempdir().map_err(|e| e.to_string())?;
        // PostgreSQL refuses to run as root: then it runs as the `postgres`
        // user the package creates, in a directory that user owns.
        let ids = if is_root() {
            let ids =
                user_ids("postgres").ok_or("running as root and there is no `postgres` user to run the server")?;
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1)).map_err(|e| e.to_string())?;
            Some(ids)
        } else {
            None
        };
        let as_user = |command: &mut Command| {
            if let Some((uid, gid)) = ids {
                command.uid(uid).gid(gid);
            }
        };
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let mut init = Command::new(&initdb);
        init.args(["--no-sync", "--auth=trust", "--username=caio", "--encoding=UTF8", "--locale=C", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut init);
        let output = init.output().map_err(|e| format!("cannot run {}: {e}", initdb.display()))?;
        if !output.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        let port = free_port()?;
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&log, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let mut server = Command::new(&postgres);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", &format!("fsync={}", if durable { "on" } else { "off" })])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        as_user(&mut server);
        let child = server.spawn().map_err(|e| format!("cannot start {}: {e}", postgres.display()))?;
        let mut started = Postgres { child, port, _dir: dir, databases: AtomicUsize::new(0) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = started.url("postgres");
            match outside_runtime(|| ::postgres::Client::connect(&url, ::postgres::NoTls).map(drop)) {
                Ok(()) => return Ok(started),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("PostgreSQL did not start: {e}\n{}", tail(&log)));
                }
                Err(_) => {}
            }
            if let Ok(Some(status)) = started.child.try_wait() {
                return Err(format!("PostgreSQL exited ({status}):\n{}", tail(&log)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of database `name` for the user `caio`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://caio@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL: every test gets one
    /// of its own.
    pub fn database(&self) -> String {
        let name = format!("caio_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let admin = self.url("postgres");
        outside_runtime(|| {
            let mut admin = ::postgres::Client::connect(&admin, ::postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .expect("a new database on the test server");
        self.url(&name)
    }
}

/// Runs `f` on a thread of its own: the `postgres` client drives its own
/// runtime and cannot be used from inside an async test's.
fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("the database call does not panic"))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (clients are disconnected).
        stop(&mut self.child, "INT");
    }
}
