-- Run history: one row per command that changes data (sync, retry, resync).
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    status      TEXT NOT NULL DEFAULT 'running',  -- running | ok | rows_failed | failed
    message     TEXT
);

-- One row per (run, map, company): the unit of work, with counts per side.
CREATE TABLE run_partitions (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,                  -- '' for a map without company
    app_0        TEXT NOT NULL,
    app_1        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    status       TEXT NOT NULL DEFAULT 'running',
    message      TEXT,
    read_0       INTEGER NOT NULL DEFAULT 0,
    read_1       INTEGER NOT NULL DEFAULT 0,
    inserted_0   INTEGER NOT NULL DEFAULT 0,      -- rows inserted into app_0
    inserted_1   INTEGER NOT NULL DEFAULT 0,
    updated_0    INTEGER NOT NULL DEFAULT 0,
    updated_1    INTEGER NOT NULL DEFAULT 0,
    failed_0     INTEGER NOT NULL DEFAULT 0,      -- rows that could not be written into app_0
    failed_1     INTEGER NOT NULL DEFAULT 0,
    unchanged    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX run_partitions_by_map ON run_partitions(map, run_id);

-- The error log: every failed row, never only the first few.
CREATE TABLE errors (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,
    source_app   TEXT NOT NULL,
    target_app   TEXT NOT NULL,
    key          TEXT NOT NULL,                  -- JSON array of the key's values
    column_name  TEXT,
    value        TEXT,
    message      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 1,
    status       TEXT NOT NULL DEFAULT 'open',   -- open | resolved
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL
);
CREATE UNIQUE INDEX errors_open_per_row ON errors(map, company, target_app, key) WHERE status = 'open';
CREATE INDEX errors_by_run ON errors(run_id);

-- A (map, company) pair, numbered so that per-key rows stay small.
CREATE TABLE partitions (
    id           INTEGER PRIMARY KEY,
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,
    UNIQUE (map, company)
);

-- Per key, the hash of the content last synced: the merge base for incremental
-- and live sync, and the proof that a key was seen by a full run.
CREATE TABLE key_state (
    partition_id INTEGER NOT NULL REFERENCES partitions(id),
    key          TEXT NOT NULL,                  -- JSON array of the key's values
    content_hash BLOB NOT NULL,
    run_id       INTEGER NOT NULL,
    PRIMARY KEY (partition_id, key)
) WITHOUT ROWID;
