//! The schemas, as numbered migrations, one list per engine. Opening a
//! store applies the missing ones in one transaction, and refuses a
//! database written by a newer caio. A migration is never edited once
//! released: changes are new migrations.

/// The SQLite migrations, in order: the n-th brings the schema to version
/// n + 1, which `PRAGMA user_version` records.
pub const SQLITE: &[&str] = &[
    // 1: the registry and the trace log.
    "CREATE TABLE contracts (
        id TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (id, version)
    ) STRICT;
    CREATE TABLE deprecations (
        id TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE traces (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    ) STRICT;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;",
    // 2: the transparency log: the Merkle tree's saved nodes (perfect
    // subtrees of 256 entries and more; smaller ones are recomputed from the
    // entries' hashes), signed checkpoints, the log entry that recorded
    // each registration and deprecation, and the texts configuration
    // entries name by digest (the policy, the key configuration).
    "CREATE TABLE tree_nodes (
        height INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (height, idx)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE checkpoints (
        size INTEGER PRIMARY KEY,
        root BLOB NOT NULL,
        note TEXT NOT NULL,
        signed_at INTEGER NOT NULL
    ) STRICT;
    ALTER TABLE contracts ADD COLUMN entry INTEGER;
    ALTER TABLE deprecations ADD COLUMN entry INTEGER;
    CREATE TABLE texts (
        digest TEXT PRIMARY KEY,
        text TEXT NOT NULL
    ) STRICT;",
];

/// The PostgreSQL schema, as migrations; the table `caio_schema` records how
/// many have been applied. `chain_head` has exactly one row: its row lock
/// serializes the appends of every replica, and it holds the head the log
/// must end at. `registry_changes` counts registry changes, so replicas
/// know when to take a new routing snapshot.
pub const POSTGRES: &[&str] = &[
    // 1: the registry, the trace log and its head.
    "CREATE TABLE contracts (
        id TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        registered_at BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (id, version)
    );
    CREATE TABLE deprecations (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    );
    CREATE TABLE traces (
        seq BIGINT PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE chain_head (
        only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
        seq BIGINT,
        hash TEXT
    );
    INSERT INTO chain_head (only_row) VALUES (TRUE);
    CREATE TABLE registry_changes (
        only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
        generation BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO registry_changes (only_row) VALUES (TRUE);",
    // 2: the transparency log, as in SQLite's migration 2.
    "CREATE TABLE tree_nodes (
        height INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (height, idx)
    );
    CREATE TABLE checkpoints (
        size BIGINT PRIMARY KEY,
        root BYTEA NOT NULL,
        note TEXT NOT NULL,
        signed_at BIGINT NOT NULL
    );
    ALTER TABLE contracts ADD COLUMN entry BIGINT;
    ALTER TABLE deprecations ADD COLUMN entry BIGINT;
    CREATE TABLE texts (
        digest TEXT PRIMARY KEY,
        text TEXT NOT NULL
    );",
];
