//! The shared backend: PostgreSQL, for several replicas of the router on
//! one registry and one trace log.
//!
//! **One chain for all replicas.** Every append transaction first takes the
//! row lock of the single row of `chain_head` (`SELECT ... FOR UPDATE`),
//! reads the head there, links its traces to it, inserts them and moves the
//! head before it commits. Appenders of every replica queue on that lock, so
//! the log is one hash chain in one order however many replicas write it; no
//! replica trusts a head it remembers. Within a replica, appends that arrive
//! together share one transaction and one commit (group commit), so the
//! lock is taken once per batch, not once per trace.
//!
//! **Threads.** The `postgres` client runs its own small runtime and must
//! not be driven from inside another one, so every statement runs on a
//! thread of this store: one writer (appends, registrations) and a few
//! readers, each with a connection of its own that it opens again after the
//! server went away. Callers never touch a connection.
//!
//! Durability is PostgreSQL's: with its default `synchronous_commit = on`,
//! an append is acknowledged after its commit is on disk.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use caio_calculus::contract::Contract;
use caio_calculus::trace::{Body, Trace, append};
use postgres::{Client, IsolationLevel, NoTls, Transaction};

use crate::chain::{RangeCheck, check_head};
use crate::migrations::POSTGRES;
use crate::records::{VersionRow, assemble, new_version, trace_row};
use crate::writer;
use crate::{ChainReport, Pending, ServiceRecord, Store, StoreError};

/// Whether `location` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Options of a PostgreSQL store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most appends committed in one transaction.
    pub max_batch: usize,
    /// Reader threads, each with its own connection.
    pub readers: usize,
    /// Longest a connection attempt may take (unless the URL sets
    /// `connect_timeout`).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { max_batch: 512, readers: 4, connect_timeout: Duration::from_secs(5) }
    }
}

/// The URL without its password, for messages and logs.
fn redacted(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// A PostgreSQL URL as it may be shown: without its password.
pub fn redact(url: &str) -> String {
    url.parse::<postgres::Config>().map_or_else(|_| "the PostgreSQL URL".into(), |config| redacted(&config))
}

/// What the engine said, with the server's detail and hint when it gave
/// them (`postgres::Error`'s own text is only "db error").
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = db.message().to_string();
        for extra in [db.detail(), db.hint()].into_iter().flatten() {
            text.push_str(&format!(" ({extra})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    if text.contains("TLS") || text.contains("tls") {
        text.push_str(" (caio connects without TLS: use `sslmode=disable` over a local socket, loopback or a tunnel)");
    }
    text
}

/// A connection that opens itself (again) when it is used.
struct Link {
    config: postgres::Config,
    location: String,
    client: Option<Client>,
}

impl Link {
    fn error(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        |e| StoreError::Database { location: self.location.clone(), message: describe(&e) }
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let client = self.config.connect(NoTls).map_err(self.error())?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection; a connection that broke on the way is
    /// dropped, so the next call opens a new one.
    fn run<T>(&mut self, f: impl FnOnce(&mut Client, &str) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let location = self.location.clone();
        let client = self.client()?;
        let result = f(client, &location);
        if result.is_err() && client.is_closed() {
            self.client = None;
        }
        result
    }
}

fn database(location: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database { location: location.to_string(), message: describe(&e) }
}

type Job = Box<dyn FnOnce(&mut Link) + Send>;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    location: String,
    writer: writer::Handle,
    readers: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with the default options: applies missing migrations (one
    /// replica at a time) and checks the head of the trace log.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, PostgresOptions::default())
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/db`).
    pub fn open_with(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| StoreError::Database {
            location: "the PostgreSQL URL".into(),
            message: format!("{}; write it as postgres://user:password@host:port/database", describe(&e)),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        config.application_name("caio");
        let location = redacted(&config);
        let spawn_error =
            |e: std::io::Error| StoreError::Database { location: location.clone(), message: e.to_string() };
        let mut threads = Vec::new();
        let (commands, received) = mpsc::channel();
        let (opened, opening) = mpsc::channel();
        let max_batch = options.max_batch.max(1);
        let mut writer = Link { config: config.clone(), location: location.clone(), client: None };
        // Opening happens on the writer's thread too, so that `open` may be
        // called from anywhere, an async runtime included.
        let writer = std::thread::Builder::new()
            .name("caio-store-writer".into())
            .spawn(move || {
                let ready = writer.run(migrate).and_then(|()| writer.run(check_log_head));
                let failed = ready.is_err();
                let _ = opened.send(ready);
                if !failed {
                    writer::run(&mut Writer(writer), received, max_batch);
                }
            })
            .map_err(spawn_error)?;
        if let Err(e) = opening.recv().unwrap_or(Err(StoreError::Closed)) {
            let _ = writer.join();
            return Err(e);
        }
        threads.push(writer);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..options.readers.max(1) {
            let queue = queue.clone();
            let mut link = Link { config: config.clone(), location: location.clone(), client: None };
            threads.push(
                std::thread::Builder::new()
                    .name("caio-store-reader".into())
                    .spawn(move || {
                        loop {
                            let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            match job {
                                Ok(job) => job(&mut link),
                                Err(_) => break,
                            }
                        }
                    })
                    .map_err(spawn_error)?,
            );
        }
        Ok(PostgresStore {
            location,
            writer: writer::Handle::new(commands),
            readers: Mutex::new(Some(jobs)),
            threads: Mutex::new(threads),
        })
    }

    /// The database, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stops the threads after the commands already queued; later calls
    /// fail with [`StoreError::Closed`]. Dropping the store does the same.
    pub fn close(&self) {
        self.writer.close();
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).take();
        for thread in self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = thread.join();
        }
    }

    /// Runs `f` on a reader thread's connection and waits for it.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, outcome) = mpsc::channel();
        let job: Job = Box::new(move |link: &mut Link| {
            let _ = reply.send(link.run(f));
        });
        {
            let readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            readers.as_ref().ok_or(StoreError::Closed)?.send(job).map_err(|_| StoreError::Closed)?;
        }
        outcome.recv().unwrap_or(Err(StoreError::Closed))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Applies the migrations the database lacks, in one transaction, under an
/// advisory lock: replicas that start together migrate one at a time.
fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    // The key is arbitrary and fixed: "caio" in ASCII.
    transaction.execute("SELECT pg_advisory_xact_lock(1667326319)", &[]).map_err(&db)?;
    transaction.batch_execute("CREATE TABLE IF NOT EXISTS caio_schema (version INTEGER NOT NULL)").map_err(&db)?;
    let version: i32 = match transaction.query_opt("SELECT version FROM caio_schema", &[]).map_err(&db)? {
        Some(row) => row.get(0),
        None => {
            transaction.execute("INSERT INTO caio_schema (version) VALUES (0)", &[]).map_err(&db)?;
            0
        }
    };
    let known = POSTGRES.len() as i32;
    if version > known {
        return Err(StoreError::Database {
            location: location.to_string(),
            message: format!(
                "the database has schema version {version}, written by a newer caio; this one knows versions up to {known}"
            ),
        });
    }
    for (i, migration) in POSTGRES.iter().enumerate().skip(version.max(0) as usize) {
        transaction.batch_execute(migration).map_err(&db)?;
        transaction.execute("UPDATE caio_schema SET version = $1", &[&(i as i32 + 1)]).map_err(&db)?;
    }
    transaction.commit().map_err(&db)
}

/// Checks the newest link of the log against the recorded head.
fn check_log_head(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let mut transaction = snapshot(client, location)?;
    let head = head_of(&mut transaction, location)?;
    let recorded = recorded_head(&mut transaction, location)?;
    let previous = match head.as_ref().and_then(|h| h.seq.checked_sub(1)) {
        Some(seq) => load_trace(&mut transaction, seq, location)?,
        None => None,
    };
    check_head(head.as_ref(), previous, recorded.as_deref())
}

/// A read-only transaction on one snapshot, so that what is read together
/// (a head and the traces before it) belongs together.
fn snapshot<'a>(client: &'a mut Client, location: &str) -> Result<Transaction<'a>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(database(location))
}

const SELECT_TRACE: &str = "SELECT seq, prev_hash, hash, body FROM traces";

fn to_trace(row: &postgres::Row) -> Result<Trace, StoreError> {
    trace_row(row.get(0), row.get(1), row.get(2), row.get::<_, &str>(3))
}

fn load_trace(transaction: &mut Transaction<'_>, seq: u64, location: &str) -> Result<Option<Trace>, StoreError> {
    let Ok(seq) = i64::try_from(seq) else { return Ok(None) };
    let row = transaction.query_opt(&format!("{SELECT_TRACE} WHERE seq = $1"), &[&seq]).map_err(database(location))?;
    row.as_ref().map(to_trace).transpose()
}

fn head_of(transaction: &mut Transaction<'_>, location: &str) -> Result<Option<Trace>, StoreError> {
    let row =
        transaction.query_opt(&format!("{SELECT_TRACE} ORDER BY seq DESC LIMIT 1"), &[]).map_err(database(location))?;
    row.as_ref().map(to_trace).transpose()
}

fn recorded_head(transaction: &mut Transaction<'_>, location: &str) -> Result<Option<String>, StoreError> {
    let row = transaction.query_one("SELECT hash FROM chain_head", &[]).map_err(database(location))?;
    Ok(row.get(0))
}

fn read_services(
    transaction: &mut Transaction<'_>,
    only: Option<&str>,
    location: &str,
) -> Result<Vec<ServiceRecord>, StoreError> {
    let db = database(location);
    let deprecated: BTreeMap<String, u64> = transaction
        .query("SELECT id, at FROM deprecations", &[])
        .map_err(&db)?
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect();
    let rows = transaction
        .query(
            "SELECT id, version, digest, registered_at, body FROM contracts \
             WHERE $1::TEXT IS NULL OR id = $1 ORDER BY id",
            &[&only],
        )
        .map_err(&db)?;
    let rows: Vec<VersionRow> =
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2), row.get::<_, i64>(3) as u64, row.get(4))).collect();
    assemble(&deprecated, rows)
}

impl Store for PostgresStore {
    fn register(&self, contract: Contract, at: u64) -> Result<ServiceRecord, StoreError> {
        self.writer.register(contract, at)
    }

    fn deprecate(&self, id: &str, at: u64) -> Result<ServiceRecord, StoreError> {
        self.writer.deprecate(id, at)
    }

    fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        self.read(|client, location| read_services(&mut snapshot(client, location)?, None, location))
    }

    fn service(&self, id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |client, location| {
            Ok(read_services(&mut snapshot(client, location)?, Some(&id), location)?.pop())
        })
    }

    fn append(&self, body: Body) -> Pending {
        self.writer.append(body)
    }

    fn trace(&self, seq: u64) -> Result<Option<Trace>, StoreError> {
        self.read(move |client, location| load_trace(&mut snapshot(client, location)?, seq, location))
    }

    fn head(&self) -> Result<Option<Trace>, StoreError> {
        self.read(|client, location| head_of(&mut snapshot(client, location)?, location))
    }

    fn verify(&self, from: Option<u64>, to: Option<u64>) -> Result<ChainReport, StoreError> {
        self.read(move |client, location| verify_range(client, from, to, location))
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn registry_generation(&self) -> Result<u64, StoreError> {
        self.read(|client, location| {
            let row = client.query_one("SELECT generation FROM registry_changes", &[]).map_err(database(location))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }
}

/// Streams the traces of `from..=to`, 4,096 rows at a time, through the
/// chain check, all from one snapshot.
fn verify_range(
    client: &mut Client,
    from: Option<u64>,
    to: Option<u64>,
    location: &str,
) -> Result<ChainReport, StoreError> {
    let db = database(location);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (low, high) = (from.map_or(0, clamp), to.map_or(i64::MAX, clamp));
    let mut transaction = snapshot(client, location)?;
    let recorded = recorded_head(&mut transaction, location)?;
    let head = head_of(&mut transaction, location)?;
    let mut check = RangeCheck::new(from, head.map(|h| h.seq), recorded);
    let portal = transaction
        .bind(&format!("{SELECT_TRACE} WHERE seq BETWEEN $1 AND $2 ORDER BY seq"), &[&low, &high])
        .map_err(&db)?;
    loop {
        let rows = transaction.query_portal(&portal, 4096).map_err(&db)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            check.push(to_trace(row)?)?;
        }
    }
    check.finish()
}

/// The engine of the writer thread: its connection.
struct Writer(Link);

impl writer::Engine for Writer {
    fn write(&mut self, work: Vec<Body>) -> Result<Vec<Trace>, StoreError> {
        self.0.run(|client, location| write(client, work, location))
    }

    fn register(&mut self, contract: Contract, at: u64) -> Result<ServiceRecord, StoreError> {
        self.0.run(|client, location| register(client, contract, at, location))
    }

    fn deprecate(&mut self, id: &str, at: u64) -> Result<ServiceRecord, StoreError> {
        self.0.run(|client, location| deprecate(client, id, at, location))
    }
}

/// Links `work` to the head of the log under its row lock and writes it.
fn write(
    client: &mut Client,
    work: Vec<Body>,
    location: &str,
) -> Result<Vec<Trace>, StoreError> {
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    let head = transaction.query_one("SELECT seq, hash FROM chain_head FOR UPDATE", &[]).map_err(&db)?;
    let head = match (head.get::<_, Option<i64>>(0), head.get::<_, Option<String>>(1)) {
        // Only the sequence number and the hash of the previous trace
        // enter a link.
        (Some(seq), Some(hash)) => {
            Some(Trace { seq: seq as u64, prev_hash: String::new(), body: Body::from_value(&serde_json::Value::Null), hash })
        }
        _ => None,
    };
    let mut linked: Vec<Trace> = Vec::with_capacity(work.len());
    let (mut seqs, mut prevs, mut hashes, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for body in work {
        let trace = append(linked.last().or(head.as_ref()), body).map_err(|full| StoreError::Full(full.0))?;
        seqs.push(i64::try_from(trace.seq).map_err(|_| StoreError::Full(trace.seq - 1))?);
        prevs.push(trace.prev_hash.clone());
        hashes.push(trace.hash.clone());
        texts.push(trace.body.as_str().to_string());
        linked.push(trace);
    }
    transaction
        .execute(
            "INSERT INTO traces (seq, prev_hash, hash, body) \
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])",
            &[&seqs, &prevs, &hashes, &texts],
        )
        .map_err(&db)?;
    let last = linked.last().expect("work is not empty");
    transaction.execute("UPDATE chain_head SET seq = $1, hash = $2", &[&(last.seq as i64), &last.hash]).map_err(&db)?;
    transaction.commit().map_err(&db)?;
    Ok(linked)
}

fn bump_generation(transaction: &mut Transaction<'_>, location: &str) -> Result<(), StoreError> {
    transaction
        .execute("UPDATE registry_changes SET generation = generation + 1", &[])
        .map_err(database(location))
        .map(drop)
}

fn register(client: &mut Client, contract: Contract, at: u64, location: &str) -> Result<ServiceRecord, StoreError> {
    let row = new_version(&contract)?;
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    let inserted = transaction
        .execute(
            "INSERT INTO contracts (id, version, digest, registered_at, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id, version) DO NOTHING",
            &[&row.id, &row.version, &row.digest, &(at as i64), &row.body],
        )
        .map_err(&db)?;
    if inserted == 0 {
        return Err(StoreError::Duplicate { service: row.id, version: row.version });
    }
    transaction.execute("DELETE FROM deprecations WHERE id = $1", &[&row.id]).map_err(&db)?;
    bump_generation(&mut transaction, location)?;
    let record = read_services(&mut transaction, Some(&row.id), location)?.pop();
    transaction.commit().map_err(&db)?;
    record.ok_or_else(|| StoreError::Corrupt(format!("service `{}` vanished after registration", row.id)))
}

fn deprecate(client: &mut Client, id: &str, at: u64, location: &str) -> Result<ServiceRecord, StoreError> {
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    let known = transaction.query_opt("SELECT 1 FROM contracts WHERE id = $1 LIMIT 1", &[&id]).map_err(&db)?;
    if known.is_none() {
        return Err(StoreError::UnknownService(caio_calculus::contract::quoted(id)));
    }
    let added = transaction
        .execute("INSERT INTO deprecations (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", &[&id, &(at as i64)])
        .map_err(&db)?;
    if added > 0 {
        bump_generation(&mut transaction, location)?;
    }
    let record = read_services(&mut transaction, Some(id), location)?.pop();
    transaction.commit().map_err(&db)?;
    record.ok_or_else(|| StoreError::UnknownService(caio_calculus::contract::quoted(id)))
}
