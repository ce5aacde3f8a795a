-- Environment fencing (engine/src/link.rs): this store's own id, which it
-- stamps into each app's database, and per app the identity of the database
-- it linked.
CREATE TABLE store_identity (id TEXT NOT NULL);
INSERT INTO store_identity (id) VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
CREATE TABLE app_links (
    app          TEXT PRIMARY KEY,
    database_id  TEXT NOT NULL,
    linked_at    TEXT NOT NULL
);
