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
use caio_calculus::merkle::{Frontier, Hash};
use caio_calculus::trace::{Body, Trace, append};
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Transaction};

use crate::chain::{RangeCheck, check_head};
use crate::migrations::POSTGRES;
use crate::records::{VersionRow, assemble, new_version, trace_row};
use crate::registry_log::{self, ConfigChange, RegistryChange, RegistryState, RowEntries, text_digest};
use crate::tree::{self, SavedNode, Source};
use crate::writer;
use crate::{
    ChainReport, ConsistencyProof, InclusionProof, Pending, ServiceRecord, Store, StoreError, StoredCheckpoint,
    TreeHead,
};

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
        // A connection the server cut may not know it yet (the reset
        // arrives with a read): after a failure, ask it.
        if result.is_err() && (client.is_closed() || client.is_valid(Duration::from_secs(1)).is_err()) {
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
                let ready = writer
                    .run(migrate)
                    .and_then(|()| writer.run(check_log_head))
                    .and_then(|()| writer.run(check_registry));
                let failed = ready.is_err();
                let _ = opened.send(ready);
                if !failed {
                    writer::run(&mut Writer { link: writer, tree: None }, received, max_batch);
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
    if version == 1 {
        log_existing_registry(&mut transaction, location)?;
    }
    transaction.commit().map_err(&db)
}

/// Migration 2's data: the tree of the existing log, saved, and one entry
/// per existing registry row, in the same transaction as the schema change.
fn log_existing_registry(transaction: &mut Transaction<'_>, location: &str) -> Result<(), StoreError> {
    let db = database(location);
    let (head, size) = lock_head(transaction, location)?;
    let (frontier, nodes) = tree::rebuild(&mut PgSource { client: transaction, location }, size)?;
    save_nodes(transaction, &nodes, location)?;
    let records = read_services(transaction, None, location)?;
    let (mut head, mut frontier) = (head, frontier);
    for (change, (id, version)) in registry_log::migration_changes(&records) {
        let (linked, grown) = link(transaction, head.as_ref(), &frontier, vec![change.body()], location)?;
        let seq = linked[0].seq as i64;
        match version {
            Some(version) => transaction
                .execute("UPDATE contracts SET entry = $1 WHERE id = $2 AND version = $3", &[&seq, &id, &version]),
            None => transaction.execute("UPDATE deprecations SET entry = $1 WHERE id = $2", &[&seq, &id]),
        }
        .map_err(&db)?;
        head = linked.into_iter().next();
        frontier = grown;
    }
    Ok(())
}

/// Checks the registry rows against the log entries that recorded them.
fn check_registry(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let mut transaction = snapshot(client, location)?;
    let records = read_services(&mut transaction, None, location)?;
    let db = database(location);
    let mut rows = RowEntries { versions: BTreeMap::new(), deprecations: BTreeMap::new() };
    for row in transaction.query("SELECT id, version, entry FROM contracts", &[]).map_err(&db)? {
        rows.versions.insert((row.get(0), row.get(1)), row.get::<_, Option<i64>>(2).map(|e| e as u64));
    }
    for row in transaction.query("SELECT id, entry FROM deprecations", &[]).map_err(&db)? {
        rows.deprecations.insert(row.get(0), row.get::<_, Option<i64>>(1).map(|e| e as u64));
    }
    let unlogged = registry_log::check_rows(&records, &rows, |seq| load_trace(&mut transaction, seq, location))?;
    if !unlogged.is_empty() {
        return Err(registry_log::unexplained(&unlogged));
    }
    Ok(())
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
    transaction: &mut impl GenericClient,
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

/// The tree's reads on one connection or transaction.
struct PgSource<'a, C: GenericClient> {
    client: &'a mut C,
    location: &'a str,
}

impl<C: GenericClient> Source for PgSource<'_, C> {
    fn link_hashes(&mut self, lo: u64, hi: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query("SELECT seq, hash FROM traces WHERE seq >= $1 AND seq < $2 ORDER BY seq", &[&clamp(lo), &clamp(hi)])
            .map_err(database(self.location))?;
        Ok(rows.iter().map(|row| (row.get::<_, i64>(0) as u64, row.get(1))).collect())
    }

    fn node(&mut self, height: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let row = self
            .client
            .query_opt("SELECT hash FROM tree_nodes WHERE height = $1 AND idx = $2", &[&(height as i32), &index])
            .map_err(database(self.location))?;
        row.map(|row| {
            row.get::<_, Vec<u8>>(0)
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("the saved tree node {height}/{index} is not 32 bytes")))
        })
        .transpose()
    }
}

fn save_nodes(transaction: &mut Transaction<'_>, nodes: &[SavedNode], location: &str) -> Result<(), StoreError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let heights: Vec<i32> = nodes.iter().map(|n| n.0 as i32).collect();
    let indexes: Vec<i64> = nodes.iter().map(|n| n.1 as i64).collect();
    let hashes: Vec<Vec<u8>> = nodes.iter().map(|n| n.2.to_vec()).collect();
    transaction
        .execute(
            "INSERT INTO tree_nodes (height, idx, hash) SELECT * FROM unnest($1::INTEGER[], $2::BIGINT[], $3::BYTEA[]) \
             ON CONFLICT (height, idx) DO NOTHING",
            &[&heights, &indexes, &hashes],
        )
        .map_err(database(location))
        .map(drop)
}

/// How many entries the log has.
fn log_size(transaction: &mut Transaction<'_>, location: &str) -> Result<u64, StoreError> {
    Ok(head_of(transaction, location)?.map_or(0, |h| h.seq + 1))
}

/// Refuses a tree size beyond the log.
fn within(size: u64, transaction: &mut Transaction<'_>, location: &str) -> Result<(), StoreError> {
    tree::within(size, log_size(transaction, location)?)
}

fn read_checkpoint(
    client: &mut Client,
    size: Option<u64>,
    location: &str,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let size = size.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    let row = client
        .query_opt(
            "SELECT size, root, note, signed_at FROM checkpoints WHERE $1::BIGINT IS NULL OR size = $1 ORDER BY size DESC LIMIT 1",
            &[&size],
        )
        .map_err(database(location))?;
    Ok(row.map(|row| StoredCheckpoint {
        size: row.get::<_, i64>(0) as u64,
        root: caio_calculus::trace::hex(&row.get::<_, Vec<u8>>(1)),
        note: row.get(2),
        signed_at: row.get::<_, i64>(3) as u64,
    }))
}

impl Store for PostgresStore {
    fn register(&self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.writer.register(contract, at, by)
    }

    fn deprecate(&self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.writer.deprecate(id, at, by)
    }

    fn tree_head(&self) -> Result<TreeHead, StoreError> {
        self.read(|client, location| {
            let mut transaction = snapshot(client, location)?;
            let size = log_size(&mut transaction, location)?;
            tree::head(&mut PgSource { client: &mut transaction, location }, size)
        })
    }

    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, StoreError> {
        self.read(move |client, location| {
            let mut transaction = snapshot(client, location)?;
            within(size, &mut transaction, location)?;
            tree::inclusion(&mut PgSource { client: &mut transaction, location }, seq, size)
        })
    }

    fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof, StoreError> {
        self.read(move |client, location| {
            let mut transaction = snapshot(client, location)?;
            within(to, &mut transaction, location)?;
            tree::consistency(&mut PgSource { client: &mut transaction, location }, from, to)
        })
    }

    fn record_config(&self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError> {
        self.writer.record_config(change, texts)
    }

    fn text(&self, digest: &str) -> Result<Option<String>, StoreError> {
        let digest = digest.to_string();
        self.read(move |client, location| {
            let row =
                client.query_opt("SELECT text FROM texts WHERE digest = $1", &[&digest]).map_err(database(location))?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn tree_nodes(&self, height: u32, lo: u64, hi: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(move |client, location| {
            let mut transaction = snapshot(client, location)?;
            within(hi.saturating_mul(1u64 << height.min(63)), &mut transaction, location)?;
            tree::nodes(&mut PgSource { client: &mut transaction, location }, height, lo, hi)
        })
    }

    fn save_checkpoint(&self, head: TreeHead, note: String, signed_at: u64) -> Result<(), StoreError> {
        self.writer.save_checkpoint(head, note, signed_at)
    }

    fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |client, location| read_checkpoint(client, size, location))
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

    fn verify_with(
        &self,
        from: Option<u64>,
        to: Option<u64>,
        checkpoints: Vec<(u64, Hash)>,
    ) -> Result<ChainReport, StoreError> {
        self.read(move |client, location| verify_range(client, from, to, checkpoints, location))
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
    extra: Vec<(u64, Hash)>,
    location: &str,
) -> Result<ChainReport, StoreError> {
    let db = database(location);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (low, high) = (from.map_or(0, clamp), to.map_or(i64::MAX, clamp));
    let mut transaction = snapshot(client, location)?;
    let recorded = recorded_head(&mut transaction, location)?;
    let head = head_of(&mut transaction, location)?;
    let mut checkpoints = Vec::new();
    if from.is_none() {
        checkpoints.extend(extra);
        for row in transaction.query("SELECT size, root FROM checkpoints", &[]).map_err(&db)? {
            let size = row.get::<_, i64>(0) as u64;
            let root: Hash = row.get::<_, Vec<u8>>(1).try_into().map_err(|_| {
                StoreError::Corrupt(format!("the checkpoint of size {size} has a root that is not 32 bytes"))
            })?;
            checkpoints.push((size, root));
        }
    }
    let mut check = RangeCheck::new(from, head.map(|h| h.seq), recorded, checkpoints);
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
    let registry = if from.is_none() && to.is_none() {
        RegistryState::of_records(&read_services(&mut transaction, None, location)?)
    } else {
        RegistryState::default()
    };
    check.finish(|size| tree::head(&mut PgSource { client: &mut transaction, location }, size), &registry)
}

/// The engine of the writer thread: its connection, and the tree as of
/// the size it last wrote (another replica may have appended since: then
/// the tree is read again under the head's lock).
struct Writer {
    link: Link,
    tree: Option<Frontier>,
}

impl writer::Engine for Writer {
    fn write(&mut self, work: Vec<Body>) -> Result<Vec<Trace>, StoreError> {
        let tree = &mut self.tree;
        self.link.run(|client, location| {
            let db = database(location);
            let mut transaction = client.transaction().map_err(&db)?;
            let (head, frontier) = locked(&mut transaction, tree, location)?;
            let (linked, frontier) = link(&mut transaction, head.as_ref(), &frontier, work, location)?;
            transaction.commit().map_err(&db)?;
            *tree = Some(frontier);
            Ok(linked)
        })
    }

    fn register(&mut self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        let tree = &mut self.tree;
        self.link.run(|client, location| register(client, tree, contract, at, by, location))
    }

    fn deprecate(&mut self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        let tree = &mut self.tree;
        self.link.run(|client, location| deprecate(client, tree, id, at, by, location))
    }

    fn record_config(&mut self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError> {
        let tree = &mut self.tree;
        self.link.run(|client, location| {
            let db = database(location);
            let mut transaction = client.transaction().map_err(&db)?;
            for text in &texts {
                transaction
                    .execute(
                        "INSERT INTO texts (digest, text) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                        &[&text_digest(text), text],
                    )
                    .map_err(&db)?;
            }
            let (head, frontier) = locked(&mut transaction, tree, location)?;
            let (linked, frontier) = link(&mut transaction, head.as_ref(), &frontier, vec![change.body()], location)?;
            transaction.commit().map_err(&db)?;
            *tree = Some(frontier);
            Ok(linked.into_iter().next().expect("one entry"))
        })
    }

    fn save_checkpoint(&mut self, head: TreeHead, note: &str, signed_at: u64) -> Result<(), StoreError> {
        self.link.run(|client, location| {
            client
                .execute(
                    "INSERT INTO checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
                    &[&(head.size as i64), &head.root.to_vec(), &note, &(signed_at as i64)],
                )
                .map_err(database(location))
                .map(drop)
        })
    }
}

/// Takes the head's row lock and reads the head: only the sequence number
/// and the hash of the newest trace enter a link. Returns it and the size.
fn lock_head(transaction: &mut Transaction<'_>, location: &str) -> Result<(Option<Trace>, u64), StoreError> {
    let head = transaction.query_one("SELECT seq, hash FROM chain_head FOR UPDATE", &[]).map_err(database(location))?;
    Ok(match (head.get::<_, Option<i64>>(0), head.get::<_, Option<String>>(1)) {
        (Some(seq), Some(hash)) => (
            Some(Trace {
                seq: seq as u64,
                prev_hash: String::new(),
                body: Body::from_value(&serde_json::Value::Null),
                hash,
            }),
            seq as u64 + 1,
        ),
        _ => (None, 0),
    })
}

/// The head under its lock and the tree at its size: the one this writer
/// kept, unless another replica appended since.
fn locked(
    transaction: &mut Transaction<'_>,
    tree: &Option<Frontier>,
    location: &str,
) -> Result<(Option<Trace>, Frontier), StoreError> {
    let (head, size) = lock_head(transaction, location)?;
    let frontier = match tree {
        Some(frontier) if frontier.size() == size => frontier.clone(),
        _ => tree::frontier(&mut PgSource { client: transaction, location }, size)?,
    };
    Ok((head, frontier))
}

/// Links `work` to `head` in `transaction`: the traces, the tree's new
/// saved nodes and the moved head.
fn link(
    transaction: &mut Transaction<'_>,
    head: Option<&Trace>,
    frontier: &Frontier,
    work: Vec<Body>,
    location: &str,
) -> Result<(Vec<Trace>, Frontier), StoreError> {
    let db = database(location);
    let mut frontier = frontier.clone();
    let mut nodes = Vec::new();
    let mut linked: Vec<Trace> = Vec::with_capacity(work.len());
    let (mut seqs, mut prevs, mut hashes, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for body in work {
        let trace = append(linked.last().or(head), body).map_err(|full| StoreError::Full(full.0))?;
        seqs.push(i64::try_from(trace.seq).map_err(|_| StoreError::Full(trace.seq - 1))?);
        prevs.push(trace.prev_hash.clone());
        hashes.push(trace.hash.clone());
        texts.push(trace.body.as_str().to_string());
        tree::grow(&mut frontier, trace.seq, &trace.hash, &mut nodes)?;
        linked.push(trace);
    }
    let Some(last) = linked.last() else { return Ok((linked, frontier)) };
    transaction
        .execute(
            "INSERT INTO traces (seq, prev_hash, hash, body) \
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])",
            &[&seqs, &prevs, &hashes, &texts],
        )
        .map_err(&db)?;
    transaction.execute("UPDATE chain_head SET seq = $1, hash = $2", &[&(last.seq as i64), &last.hash]).map_err(&db)?;
    save_nodes(transaction, &nodes, location)?;
    Ok((linked, frontier))
}

fn bump_generation(transaction: &mut Transaction<'_>, location: &str) -> Result<(), StoreError> {
    transaction
        .execute("UPDATE registry_changes SET generation = generation + 1", &[])
        .map_err(database(location))
        .map(drop)
}

/// Writes a registry change's entry after the rows changed in
/// `transaction`, made by `change` from the registry it leaves (every
/// service, returned).
fn log_change(
    transaction: &mut Transaction<'_>,
    head: Option<&Trace>,
    frontier: &Frontier,
    change: impl FnOnce(String) -> RegistryChange,
    location: &str,
) -> Result<(Frontier, Vec<ServiceRecord>), StoreError> {
    let services = read_services(transaction, None, location)?;
    let change = change(RegistryState::of_records(&services).digest());
    let (_, grown) = link(transaction, head, frontier, vec![change.body()], location)?;
    Ok((grown, services))
}

fn register(
    client: &mut Client,
    tree: &mut Option<Frontier>,
    contract: Contract,
    at: u64,
    by: &str,
    location: &str,
) -> Result<ServiceRecord, StoreError> {
    let row = new_version(&contract)?;
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    let (head, frontier) = locked(&mut transaction, tree, location)?;
    let entry = frontier.size() as i64;
    let inserted = transaction
        .execute(
            "INSERT INTO contracts (id, version, digest, registered_at, body, entry) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id, version) DO NOTHING",
            &[&row.id, &row.version, &row.digest, &(at as i64), &row.body, &entry],
        )
        .map_err(&db)?;
    if inserted == 0 {
        return Err(StoreError::Duplicate { service: row.id, version: row.version });
    }
    transaction.execute("DELETE FROM deprecations WHERE id = $1", &[&row.id]).map_err(&db)?;
    bump_generation(&mut transaction, location)?;
    let (grown, services) = log_change(
        &mut transaction,
        head.as_ref(),
        &frontier,
        |registry| RegistryChange::registration(&row.id, &row.version, &row.digest, by, at, registry),
        location,
    )?;
    transaction.commit().map_err(&db)?;
    *tree = Some(grown);
    let record = services.into_iter().find(|s| s.id == row.id);
    record.ok_or_else(|| StoreError::Corrupt(format!("service `{}` vanished after registration", row.id)))
}

fn deprecate(
    client: &mut Client,
    tree: &mut Option<Frontier>,
    id: &str,
    at: u64,
    by: &str,
    location: &str,
) -> Result<ServiceRecord, StoreError> {
    let db = database(location);
    let mut transaction = client.transaction().map_err(&db)?;
    let known = transaction.query_opt("SELECT 1 FROM contracts WHERE id = $1 LIMIT 1", &[&id]).map_err(&db)?;
    if known.is_none() {
        return Err(StoreError::UnknownService(caio_calculus::contract::quoted(id)));
    }
    let (head, frontier) = locked(&mut transaction, tree, location)?;
    let entry = frontier.size() as i64;
    let added = transaction
        .execute(
            "INSERT INTO deprecations (id, at, entry) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[&id, &(at as i64), &entry],
        )
        .map_err(&db)?;
    let mut grown = None;
    if added > 0 {
        bump_generation(&mut transaction, location)?;
        let deprecation = |registry| RegistryChange::deprecation(id, by, at, registry);
        grown = Some(log_change(&mut transaction, head.as_ref(), &frontier, deprecation, location)?.0);
    }
    let record = read_services(&mut transaction, Some(id), location)?.pop();
    transaction.commit().map_err(&db)?;
    if grown.is_some() {
        *tree = grown;
    }
    record.ok_or_else(|| StoreError::UnknownService(caio_calculus::contract::quoted(id)))
}
