-- The same schema as migrations/sqlite/001_initial.sql, in PostgreSQL's types.
CREATE TABLE runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    status      TEXT NOT NULL DEFAULT 'running',
    message     TEXT
);

CREATE TABLE run_partitions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       BIGINT NOT NULL REFERENCES runs(id),
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,
    app_0        TEXT NOT NULL,
    app_1        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    status       TEXT NOT NULL DEFAULT 'running',
    message      TEXT,
    read_0       BIGINT NOT NULL DEFAULT 0,
    read_1       BIGINT NOT NULL DEFAULT 0,
    inserted_0   BIGINT NOT NULL DEFAULT 0,
    inserted_1   BIGINT NOT NULL DEFAULT 0,
    updated_0    BIGINT NOT NULL DEFAULT 0,
    updated_1    BIGINT NOT NULL DEFAULT 0,
    failed_0     BIGINT NOT NULL DEFAULT 0,
    failed_1     BIGINT NOT NULL DEFAULT 0,
    unchanged    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX run_partitions_by_map ON run_partitions(map, run_id);

CREATE TABLE errors (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       BIGINT NOT NULL,
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,
    source_app   TEXT NOT NULL,
    target_app   TEXT NOT NULL,
    key          TEXT NOT NULL,
    column_name  TEXT,
    value        TEXT,
    message      TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 1,
    status       TEXT NOT NULL DEFAULT 'open',
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL
);
CREATE UNIQUE INDEX errors_open_per_row ON errors(map, company, target_app, key) WHERE status = 'open';
CREATE INDEX errors_by_run ON errors(run_id);

CREATE TABLE partitions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    map          TEXT NOT NULL,
    company      TEXT NOT NULL,
    UNIQUE (map, company)
);

CREATE TABLE key_state (
    partition_id BIGINT NOT NULL REFERENCES partitions(id),
    key          TEXT COLLATE "C" NOT NULL,
    content_hash BYTEA NOT NULL,
    run_id       BIGINT NOT NULL,
    PRIMARY KEY (partition_id, key)
);
