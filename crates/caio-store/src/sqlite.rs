//! The embedded backend: one SQLite file in WAL mode.
//!
//! One writer thread owns the only connection that writes. Appends queue up
//! while a transaction commits and then go to disk together: one
//! transaction and one sync for the whole group, each caller answered only
//! after the commit. Readers use connections of their own, which WAL lets
//! run beside the writer.
//!
//! Checkpoints (copying the WAL back into the database file) run on a thread
//! of their own every quarter second, so that the writer, and the callers
//! waiting on it, never pay for them.
//!
//! Durability: `synchronous = FULL` (the default) syncs the WAL on every
//! commit, so an acknowledged trace survives a power loss; `NORMAL` syncs
//! only at checkpoints, faster, and a power loss (not a process crash) may
//! then lose the last commits, never corrupt the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use caio_calculus::contract::Contract;
use caio_calculus::merkle::{Frontier, Hash};
use caio_calculus::trace::{Body, Trace, append};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::chain::{RangeCheck, check_head};
use crate::migrations::SQLITE;
use crate::records::{assemble, new_version, trace_row};
use crate::registry_log::{self, ConfigChange, RegistryChange, RegistryState, RowEntries, text_digest};
use crate::tree::{self, SavedNode, Source};
use crate::writer;
use crate::{
    ChainReport, ConsistencyProof, InclusionProof, Pending, ServiceRecord, Store, StoreError, StoredCheckpoint,
    TreeHead,
};

/// How the file is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is synced: an acknowledged trace survives a power loss.
    #[default]
    Full,
    /// Synced at checkpoints only: survives a crash of the process, and a
    /// power loss may lose the last commits.
    Normal,
}

/// Options of a SQLite store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The `synchronous` setting.
    pub synchronous: Synchronous,
    /// Most appends committed in one transaction.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { synchronous: Synchronous::Full, max_batch: 512 }
    }
}

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: writer::Handle,
    thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn database(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + use<> {
    let location = path.display().to_string();
    move |e| StoreError::Database { location: location.clone(), message: e.to_string() }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default options:
    /// applies missing migrations and verifies the head of the trace log.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = database(&path);
        let mut connection = Connection::open(&path).map_err(&db)?;
        let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(&db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database {
                location: path.display().to_string(),
                message: format!("cannot use write-ahead logging (journal mode is {mode}); use a local file system"),
            });
        }
        let synchronous = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        connection
            .execute_batch(&format!(
                "PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;"
            ))
            .map_err(&db)?;
        let migrated_from = migrate(&mut connection, &path)?;
        let head = verify_head(&connection, &path)?;
        let mut writer = Writer {
            frontier: load_tree(&mut connection, &path, head.as_ref())?,
            connection,
            path: path.clone(),
            head,
        };
        writer.check_registry(migrated_from)?;
        let (sender, receiver) = mpsc::channel();
        let max_batch = options.max_batch.max(1);
        let writer_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("caio-store-writer".into())
            .spawn(move || writer::run(&mut Writer { path: writer_path, ..writer }, receiver, max_batch))
            .map_err(|e| StoreError::Database { location: path.display().to_string(), message: e.to_string() })?;
        let checkpointer = spawn_checkpointer(&path, synchronous)?;
        Ok(SqliteStore {
            path,
            writer: writer::Handle::new(sender),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the commands already queued; later writes
    /// fail with [`StoreError::Closed`]. Dropping the store does the same.
    pub fn close(&self) {
        self.writer.close();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
        if let Some((stop, thread)) = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(stop);
            let _ = thread.join();
        }
    }

    /// Runs `f` on a read connection from the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection = Connection::open_with_flags(&self.path, flags).map_err(database(&self.path))?;
                connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(database(&self.path))?;
                connection
            }
        };
        let result = f(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < 8 {
            readers.push(connection);
        }
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The checkpoint thread: a passive checkpoint (which never blocks the
/// writer) every 250 ms, and a full one when the store closes.
fn spawn_checkpointer(path: &Path, synchronous: &str) -> Result<(mpsc::Sender<()>, JoinHandle<()>), StoreError> {
    let db = database(path);
    let connection = Connection::open(path).map_err(&db)?;
    connection
        .execute_batch(&format!("PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;"))
        .map_err(&db)?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("caio-store-checkpoint".into())
        .spawn(move || {
            let checkpoint = |mode: &str| {
                let _ = connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
            };
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(std::time::Duration::from_millis(250))
            {
                checkpoint("PASSIVE");
            }
            checkpoint("TRUNCATE");
        })
        .map_err(|e| StoreError::Database { location: path.display().to_string(), message: e.to_string() })?;
    Ok((stop, thread))
}

/// Applies the migrations the file lacks, in one transaction; returns the
/// schema version the file had.
fn migrate(connection: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    let db = database(path);
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(&db)?;
    let known = SQLITE.len() as i64;
    if version > known {
        return Err(StoreError::Database {
            location: path.display().to_string(),
            message: format!(
                "the file has schema version {version}, written by a newer caio; this one knows versions up to {known}"
            ),
        });
    }
    let transaction = connection.transaction().map_err(&db)?;
    for (i, migration) in SQLITE.iter().enumerate().skip(version as usize) {
        transaction.execute_batch(migration).map_err(&db)?;
        transaction.pragma_update(None, "user_version", i as i64 + 1).map_err(&db)?;
    }
    transaction.commit().map_err(&db)?;
    Ok(version)
}

fn load_trace(connection: &Connection, sql: &str, arg: i64, path: &Path) -> Result<Option<Trace>, StoreError> {
    let row = connection
        .query_row(sql, [arg], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
        })
        .optional()
        .map_err(database(path))?;
    row.map(|(seq, prev, hash, body)| trace_row(seq, prev, hash, &body)).transpose()
}

const SELECT_TRACE: &str = "SELECT seq, prev_hash, hash, body FROM traces";

fn head_of(connection: &Connection, path: &Path) -> Result<Option<Trace>, StoreError> {
    load_trace(connection, &format!("{SELECT_TRACE} WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"), i64::MAX, path)
}

fn recorded_head(connection: &Connection, path: &Path) -> Result<Option<String>, StoreError> {
    connection
        .query_row("SELECT value FROM meta WHERE key = 'head'", [], |row| row.get(0))
        .optional()
        .map_err(database(path))
}

/// Checks the newest link of the log when the store opens: its hash
/// recomputes, it follows the trace before it, and it is the head the store
/// recorded. The whole chain is verified on demand ([`Store::verify`]).
fn verify_head(connection: &Connection, path: &Path) -> Result<Option<Trace>, StoreError> {
    let head = head_of(connection, path)?;
    let recorded = recorded_head(connection, path)?;
    let previous = match head.as_ref().and_then(|h| h.seq.checked_sub(1)) {
        Some(seq) => load_trace(connection, &format!("{SELECT_TRACE} WHERE seq = ?1"), seq as i64, path)?,
        None => None,
    };
    check_head(head.as_ref(), previous, recorded.as_deref())?;
    Ok(head)
}

/// The tree's reads on one connection.
struct SqliteSource<'a> {
    connection: &'a Connection,
    path: &'a Path,
}

impl Source for SqliteSource<'_> {
    fn link_hashes(&mut self, lo: u64, hi: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let db = database(self.path);
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached("SELECT seq, hash FROM traces WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")
            .map_err(&db)?;
        let rows = statement
            .query_map([clamp(lo), clamp(hi)], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)))
            .map_err(&db)?;
        rows.collect::<Result<_, _>>().map_err(&db)
    }

    fn node(&mut self, height: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let db = database(self.path);
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let bytes: Option<Vec<u8>> = self
            .connection
            .prepare_cached("SELECT hash FROM tree_nodes WHERE height = ?1 AND idx = ?2")
            .map_err(&db)?
            .query_row(params![height, index], |row| row.get(0))
            .optional()
            .map_err(&db)?;
        bytes
            .map(|b| {
                b.try_into()
                    .map_err(|_| StoreError::Corrupt(format!("the saved tree node {height}/{index} is not 32 bytes")))
            })
            .transpose()
    }
}

/// The log's size when its newest entry is `head`.
fn size_of(head: Option<&Trace>) -> u64 {
    head.map_or(0, |h| h.seq + 1)
}

/// The tree of the log when the store opens: from the saved nodes, or
/// rebuilt from every entry (and saved) for a log an older caio wrote.
fn load_tree(connection: &mut Connection, path: &Path, head: Option<&Trace>) -> Result<Frontier, StoreError> {
    let size = size_of(head);
    let mut source = SqliteSource { connection, path };
    if tree::saved_nodes_present(&mut source, size)? {
        return tree::frontier(&mut source, size);
    }
    let (frontier, nodes) = tree::rebuild(&mut source, size)?;
    let db = database(path);
    let transaction = connection.transaction().map_err(&db)?;
    save_nodes(&transaction, &nodes, path)?;
    transaction.commit().map_err(&db)?;
    Ok(frontier)
}

fn save_nodes(transaction: &Transaction<'_>, nodes: &[SavedNode], path: &Path) -> Result<(), StoreError> {
    let db = database(path);
    let mut insert = transaction
        .prepare_cached("INSERT OR REPLACE INTO tree_nodes (height, idx, hash) VALUES (?1, ?2, ?3)")
        .map_err(&db)?;
    for (height, index, hash) in nodes {
        insert.execute(params![height, *index as i64, &hash[..]]).map_err(&db)?;
    }
    Ok(())
}

/// The log entries each stored version and deprecation names.
fn registry_entries(connection: &Connection, path: &Path) -> Result<RowEntries, StoreError> {
    let db = database(path);
    let mut versions = BTreeMap::new();
    let mut statement = connection.prepare("SELECT id, version, entry FROM contracts").map_err(&db)?;
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<i64>>(2)?)))
        .map_err(&db)?;
    for row in rows {
        let (id, version, entry) = row.map_err(&db)?;
        versions.insert((id, version), entry.map(|e| e as u64));
    }
    let mut deprecations = BTreeMap::new();
    let mut statement = connection.prepare("SELECT id, entry FROM deprecations").map_err(&db)?;
    let rows =
        statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?))).map_err(&db)?;
    for row in rows {
        let (id, entry) = row.map_err(&db)?;
        deprecations.insert(id, entry.map(|e| e as u64));
    }
    Ok(RowEntries { versions, deprecations })
}

fn stored_checkpoints(connection: &Connection, path: &Path) -> Result<Vec<(u64, Hash)>, StoreError> {
    let db = database(path);
    let mut statement = connection.prepare("SELECT size, root FROM checkpoints").map_err(&db)?;
    let rows = statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))).map_err(&db)?;
    let mut checkpoints = Vec::new();
    for row in rows {
        let (size, root) = row.map_err(&db)?;
        let root = root.try_into().map_err(|_| {
            StoreError::Corrupt(format!("the checkpoint of size {size} has a root that is not 32 bytes"))
        })?;
        checkpoints.push((size as u64, root));
    }
    Ok(checkpoints)
}

fn read_checkpoint(
    connection: &Connection,
    size: Option<u64>,
    path: &Path,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let db = database(path);
    let size = size.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    connection
        .query_row(
            "SELECT size, root, note, signed_at FROM checkpoints WHERE ?1 IS NULL OR size = ?1 ORDER BY size DESC LIMIT 1",
            [size],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?)),
        )
        .optional()
        .map_err(&db)
        .map(|row| {
            row.map(|(size, root, note, at)| StoredCheckpoint {
                size: size as u64,
                root: caio_calculus::trace::hex(&root),
                note,
                signed_at: at as u64,
            })
        })
}

/// Reads the service records, in id order; versions in semantic-version order.
fn read_services(connection: &Connection, only: Option<&str>, path: &Path) -> Result<Vec<ServiceRecord>, StoreError> {
    let db = database(path);
    let mut deprecated: BTreeMap<String, u64> = BTreeMap::new();
    let mut statement = connection.prepare("SELECT id, at FROM deprecations").map_err(&db)?;
    let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))).map_err(&db)?;
    for row in rows {
        let (id, at) = row.map_err(&db)?;
        deprecated.insert(id, at as u64);
    }
    let mut statement = connection
        .prepare(
            "SELECT id, version, digest, registered_at, body FROM contracts WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
        )
        .map_err(&db)?;
    let rows = statement
        .query_map([only], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(&db)?;
    let rows: Vec<_> = rows
        .map(|row| row.map(|(id, version, digest, at, body)| (id, version, digest, at as u64, body)))
        .collect::<Result<_, _>>()
        .map_err(&db)?;
    assemble(&deprecated, rows)
}

impl Store for SqliteStore {
    fn register(&self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.writer.register(contract, at, by)
    }

    fn deprecate(&self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.writer.deprecate(id, at, by)
    }

    fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        self.read(|connection| read_services(connection, None, &self.path))
    }

    fn service(&self, id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        self.read(|connection| Ok(read_services(connection, Some(id), &self.path)?.pop()))
    }

    fn append(&self, body: Body) -> Pending {
        self.writer.append(body)
    }

    fn trace(&self, seq: u64) -> Result<Option<Trace>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else { return Ok(None) };
        self.read(|connection| load_trace(connection, &format!("{SELECT_TRACE} WHERE seq = ?1"), seq, &self.path))
    }

    fn head(&self) -> Result<Option<Trace>, StoreError> {
        self.read(|connection| head_of(connection, &self.path))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn verify_with(
        &self,
        from: Option<u64>,
        to: Option<u64>,
        checkpoints: Vec<(u64, Hash)>,
    ) -> Result<ChainReport, StoreError> {
        self.read(|connection| verify_range(connection, from, to, checkpoints, &self.path))
    }

    fn tree_head(&self) -> Result<TreeHead, StoreError> {
        self.read(|connection| {
            let size = size_of(head_of(connection, &self.path)?.as_ref());
            tree::head(&mut SqliteSource { connection, path: &self.path }, size)
        })
    }

    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, StoreError> {
        self.read(|connection| {
            within(size, connection, &self.path)?;
            tree::inclusion(&mut SqliteSource { connection, path: &self.path }, seq, size)
        })
    }

    fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof, StoreError> {
        self.read(|connection| {
            within(to, connection, &self.path)?;
            tree::consistency(&mut SqliteSource { connection, path: &self.path }, from, to)
        })
    }

    fn record_config(&self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError> {
        self.writer.record_config(change, texts)
    }

    fn text(&self, digest: &str) -> Result<Option<String>, StoreError> {
        self.read(|connection| {
            connection
                .query_row("SELECT text FROM texts WHERE digest = ?1", [digest], |row| row.get(0))
                .optional()
                .map_err(database(&self.path))
        })
    }

    fn tree_nodes(&self, height: u32, lo: u64, hi: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(|connection| {
            within(hi.saturating_mul(1u64 << height.min(63)), connection, &self.path)?;
            tree::nodes(&mut SqliteSource { connection, path: &self.path }, height, lo, hi)
        })
    }

    fn save_checkpoint(&self, head: TreeHead, note: String, signed_at: u64) -> Result<(), StoreError> {
        self.writer.save_checkpoint(head, note, signed_at)
    }

    fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|connection| read_checkpoint(connection, size, &self.path))
    }
}

/// Refuses a tree size beyond the log.
fn within(size: u64, connection: &Connection, path: &Path) -> Result<(), StoreError> {
    tree::within(size, size_of(head_of(connection, path)?.as_ref()))
}

/// Streams the traces of `from..=to` through the chain check.
fn verify_range(
    connection: &Connection,
    from: Option<u64>,
    to: Option<u64>,
    mut checkpoints: Vec<(u64, Hash)>,
    path: &Path,
) -> Result<ChainReport, StoreError> {
    let db = database(path);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (low, high) = (from.map_or(0, clamp), to.map_or(i64::MAX, clamp));
    let recorded = recorded_head(connection, path)?;
    let head = head_of(connection, path)?;
    if from.is_none() {
        checkpoints.extend(stored_checkpoints(connection, path)?);
    } else {
        checkpoints.clear();
    }
    let mut check = RangeCheck::new(from, head.map(|h| h.seq), recorded, checkpoints);
    let mut statement =
        connection.prepare(&format!("{SELECT_TRACE} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")).map_err(&db)?;
    let mut rows = statement.query(params![low, high]).map_err(&db)?;
    while let Some(row) = rows.next().map_err(&db)? {
        check.push(trace_row(
            row.get(0).map_err(&db)?,
            row.get(1).map_err(&db)?,
            row.get(2).map_err(&db)?,
            &row.get::<_, String>(3).map_err(&db)?,
        )?)?;
    }
    let registry = if from.is_none() && to.is_none() {
        RegistryState::of_records(&read_services(connection, None, path)?)
    } else {
        RegistryState::default()
    };
    check.finish(|size| tree::head(&mut SqliteSource { connection, path }, size), &registry)
}

/// The engine of the writer thread: the writing connection, the head of
/// the log and its tree, which only this thread moves.
struct Writer {
    connection: Connection,
    path: PathBuf,
    head: Option<Trace>,
    frontier: Frontier,
}

/// Links `bodies` to the log in `transaction`: the traces, the tree's new
/// saved nodes and the recorded head. The head and tree given are updated
/// only in the returned copies, so that a failed commit leaves no trace.
fn link(
    transaction: &Transaction<'_>,
    head: Option<&Trace>,
    frontier: &Frontier,
    bodies: Vec<Body>,
    path: &Path,
) -> Result<(Vec<Trace>, Frontier), StoreError> {
    let db = database(path);
    let mut linked: Vec<Trace> = Vec::with_capacity(bodies.len());
    let mut frontier = frontier.clone();
    let mut nodes = Vec::new();
    {
        let mut insert = transaction
            .prepare_cached("INSERT INTO traces (seq, prev_hash, hash, body) VALUES (?1, ?2, ?3, ?4)")
            .map_err(&db)?;
        for body in bodies {
            let previous = linked.last().or(head);
            let trace = append(previous, body).map_err(|full| StoreError::Full(full.0))?;
            let seq = i64::try_from(trace.seq).map_err(|_| StoreError::Full(trace.seq - 1))?;
            insert.execute(params![seq, trace.prev_hash, trace.hash, trace.body.as_str()]).map_err(&db)?;
            tree::grow(&mut frontier, trace.seq, &trace.hash, &mut nodes)?;
            linked.push(trace);
        }
    }
    save_nodes(transaction, &nodes, path)?;
    if let Some(last) = linked.last() {
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES ('head', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&last.hash],
            )
            .map_err(&db)?;
    }
    Ok((linked, frontier))
}

impl Writer {
    /// Checks the registry against the log when the store opens, and logs
    /// the rows an older caio stored without entries (one registration or
    /// deprecation entry each, by [`MIGRATION_ACTOR`]).
    fn check_registry(&mut self, migrated_from: i64) -> Result<(), StoreError> {
        let records = read_services(&self.connection, None, &self.path)?;
        let rows = registry_entries(&self.connection, &self.path)?;
        let (connection, path) = (&self.connection, &self.path);
        let unlogged = registry_log::check_rows(&records, &rows, |seq| {
            load_trace(connection, &format!("{SELECT_TRACE} WHERE seq = ?1"), seq as i64, path)
        })?;
        if unlogged.is_empty() {
            return Ok(());
        }
        if !(1..2).contains(&migrated_from) {
            return Err(registry_log::unexplained(&unlogged));
        }
        let db = database(&self.path);
        let transaction = self.connection.transaction().map_err(&db)?;
        let mut head = self.head.clone();
        let mut frontier = self.frontier.clone();
        for (change, (id, version)) in registry_log::migration_changes(&records) {
            let (trace, grown) = Writer::log_change(&transaction, head.as_ref(), &frontier, change, &self.path)?;
            match version {
                Some(version) => transaction.execute(
                    "UPDATE contracts SET entry = ?1 WHERE id = ?2 AND version = ?3",
                    params![trace.seq as i64, id, version],
                ),
                None => transaction
                    .execute("UPDATE deprecations SET entry = ?1 WHERE id = ?2", params![trace.seq as i64, id]),
            }
            .map_err(&db)?;
            head = Some(trace);
            frontier = grown;
        }
        transaction.commit().map_err(&db)?;
        self.head = head;
        self.frontier = frontier;
        Ok(())
    }

    /// Writes a registry change's entry in `transaction`.
    fn log_change(
        transaction: &Transaction<'_>,
        head: Option<&Trace>,
        frontier: &Frontier,
        change: RegistryChange,
        path: &Path,
    ) -> Result<(Trace, Frontier), StoreError> {
        let (linked, grown) = link(transaction, head, frontier, vec![change.body()], path)?;
        Ok((linked.into_iter().next().expect("one entry"), grown))
    }
}

impl writer::Engine for Writer {
    fn write(&mut self, work: Vec<Body>) -> Result<Vec<Trace>, StoreError> {
        let db = database(&self.path);
        let transaction = self.connection.transaction().map_err(&db)?;
        let (linked, frontier) = link(&transaction, self.head.as_ref(), &self.frontier, work, &self.path)?;
        let Some(last) = linked.last() else { return Ok(linked) };
        transaction.commit().map_err(&db)?;
        self.head = Some(last.clone());
        self.frontier = frontier;
        Ok(linked)
    }

    fn register(&mut self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        let row = new_version(&contract)?;
        let db = database(&self.path);
        let transaction = self.connection.transaction().map_err(&db)?;
        let exists: Option<i64> = transaction
            .query_row("SELECT 1 FROM contracts WHERE id = ?1 AND version = ?2", [&row.id, &row.version], |row| {
                row.get(0)
            })
            .optional()
            .map_err(&db)?;
        if exists.is_some() {
            return Err(StoreError::Duplicate { service: row.id, version: row.version });
        }
        let seq = size_of(self.head.as_ref());
        transaction
            .execute(
                "INSERT INTO contracts (id, version, digest, registered_at, body, entry) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.id, row.version, row.digest, at as i64, row.body, seq as i64],
            )
            .map_err(&db)?;
        transaction.execute("DELETE FROM deprecations WHERE id = ?1", [&contract.id]).map_err(&db)?;
        let services = read_services(&transaction, None, &self.path)?;
        let registry = RegistryState::of_records(&services).digest();
        let change = RegistryChange::registration(&row.id, &row.version, &row.digest, by, at, registry);
        let (trace, frontier) =
            Writer::log_change(&transaction, self.head.as_ref(), &self.frontier, change, &self.path)?;
        transaction.commit().map_err(&db)?;
        self.head = Some(trace);
        self.frontier = frontier;
        let record = services.into_iter().find(|s| s.id == contract.id);
        record.ok_or_else(|| StoreError::Corrupt(format!("service `{}` vanished after registration", contract.id)))
    }

    fn deprecate(&mut self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        let db = database(&self.path);
        let transaction = self.connection.transaction().map_err(&db)?;
        let known: Option<i64> = transaction
            .query_row("SELECT 1 FROM contracts WHERE id = ?1 LIMIT 1", [id], |row| row.get(0))
            .optional()
            .map_err(&db)?;
        if known.is_none() {
            return Err(StoreError::UnknownService(caio_calculus::contract::quoted(id)));
        }
        let seq = size_of(self.head.as_ref());
        let added = transaction
            .execute(
                "INSERT INTO deprecations (id, at, entry) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                params![id, at as i64, seq as i64],
            )
            .map_err(&db)?;
        let mut moved = None;
        if added > 0 {
            let registry = RegistryState::of_records(&read_services(&transaction, None, &self.path)?).digest();
            let change = RegistryChange::deprecation(id, by, at, registry);
            moved = Some(Writer::log_change(&transaction, self.head.as_ref(), &self.frontier, change, &self.path)?);
        }
        let record = read_services(&transaction, Some(id), &self.path)?.pop();
        transaction.commit().map_err(&db)?;
        if let Some((trace, frontier)) = moved {
            self.head = Some(trace);
            self.frontier = frontier;
        }
        record.ok_or_else(|| StoreError::UnknownService(caio_calculus::contract::quoted(id)))
    }

    fn record_config(&mut self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError> {
        let db = database(&self.path);
        let transaction = self.connection.transaction().map_err(&db)?;
        for text in &texts {
            transaction
                .execute("INSERT OR IGNORE INTO texts (digest, text) VALUES (?1, ?2)", params![text_digest(text), text])
                .map_err(&db)?;
        }
        let (linked, frontier) =
            link(&transaction, self.head.as_ref(), &self.frontier, vec![change.body()], &self.path)?;
        transaction.commit().map_err(&db)?;
        let trace = linked.into_iter().next().expect("one entry");
        self.head = Some(trace.clone());
        self.frontier = frontier;
        Ok(trace)
    }

    fn save_checkpoint(&mut self, head: TreeHead, note: &str, signed_at: u64) -> Result<(), StoreError> {
        let db = database(&self.path);
        let size = i64::try_from(head.size).map_err(|_| StoreError::Full(head.size))?;
        self.connection
            .execute(
                "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING",
                params![size, &head.root[..], note, signed_at as i64],
            )
            .map_err(&db)
            .map(drop)
    }
}
