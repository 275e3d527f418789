//! The schema, as numbered migrations. `PRAGMA user_version` records how many
//! have been applied; opening a store applies the missing ones in one
//! transaction, and refuses a file written by a newer caio. A migration is
//! never edited once released: changes are new migrations.

/// The migrations, in order: the n-th brings the schema to version n + 1.
pub const MIGRATIONS: &[&str] = &[
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
];
