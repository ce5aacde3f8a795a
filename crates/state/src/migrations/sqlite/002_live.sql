-- Live sync: each map's state, where it has read each app's changes, and conflicts.
CREATE TABLE map_states (
    map         TEXT PRIMARY KEY,
    state       TEXT NOT NULL,                  -- running | paused (a stopped map has no row)
    reason      TEXT,                           -- why it was paused, when dualsync paused it
    changed_at  TEXT NOT NULL
);

-- Per map and app: the change-table cursor up to which changes are reconciled (the watermark).
CREATE TABLE cursors (
    map         TEXT NOT NULL,
    app         TEXT NOT NULL,
    position    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (map, app)
);

-- Keys changed on both apps since their merge base, and how each was settled.
CREATE TABLE conflicts (
    id          INTEGER PRIMARY KEY,
    map         TEXT NOT NULL,
    company     TEXT NOT NULL,
    key         TEXT NOT NULL,
    columns     TEXT NOT NULL,                  -- the columns both apps changed, comma-separated
    value_0     TEXT,                           -- app 0's row as JSON (null: deleted)
    value_1     TEXT,
    policy      TEXT NOT NULL,
    resolution  TEXT,                           -- e.g. 'master: erp', 'latest: crm', 'took crm'
    status      TEXT NOT NULL DEFAULT 'open',   -- open | resolved
    detected_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE UNIQUE INDEX conflicts_open_per_key ON conflicts(map, company, key) WHERE status = 'open';

ALTER TABLE run_partitions ADD COLUMN deleted_0 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run_partitions ADD COLUMN deleted_1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run_partitions ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX errors_by_map_time ON errors(map, last_seen);
