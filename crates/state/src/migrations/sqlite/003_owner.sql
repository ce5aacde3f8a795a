-- The process that holds a SQLite store for a sync or a live run (owner.rs):
-- one row at most, written once the lock file beside the store is taken.
CREATE TABLE store_owner (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    command  TEXT NOT NULL,
    since    TEXT NOT NULL
);
