-- Several processes of one command sharing a store's work (work.rs).
--
-- Epochs now come from one sequence for every lease, so that any later claim
-- carries a larger token than any earlier one, whatever it claimed: an app's
-- fence row raised by one kind of holder also fences every other kind.
CREATE SEQUENCE lease_epochs;
SELECT setval('lease_epochs', coalesce((SELECT max(epoch) FROM leases), 0) + 1);

-- A worker is a process that shares the store's work: its lease is a row of
-- `leases` (unit 'worker:<owner>', with its command), and the units of work
-- it holds live as long as that lease. A unit is one group of lookup-linked
-- maps for live apply (job NULL), or one (sync job, stage, map pass, company)
-- item; a company too big for one is split into chunks of its key range,
-- items of their own under it (parent), and is done when they all are. A claim bumps the unit's epoch: the fencing token of the app writes
-- made for it, checked against the apps' dualsync_fence row of the unit.
CREATE TABLE work_items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit        TEXT NOT NULL UNIQUE,
    job         BIGINT,
    stage       BIGINT NOT NULL DEFAULT 0,
    step        TEXT NOT NULL,          -- the map (and pass) it syncs, or the live group's maps
    company     TEXT NOT NULL DEFAULT '',
    owner       TEXT,                   -- the worker holding it
    epoch       BIGINT NOT NULL DEFAULT 0,
    claimed_at  TIMESTAMPTZ,
    claims      BIGINT NOT NULL DEFAULT 0,
    takeovers   BIGINT NOT NULL DEFAULT 0, -- claims of a unit whose holder had died
    done_by     TEXT,
    done_at     TIMESTAMPTZ,
    message     TEXT,                   -- why a sync item stopped early, if it did
    run_id      BIGINT,                 -- the run that finished it
    split       BOOLEAN NOT NULL DEFAULT false, -- a company split into chunks (never claimed again)
    parent      BIGINT,                 -- a chunk's company item
    chunk       BIGINT,                 -- a chunk's number, in key order
    after_key   TEXT,                   -- a chunk's keys: after this one (JSON; NULL: from the first)
    upto_key    TEXT,                   -- and up to this one (NULL: to the last)
    fresh       BOOLEAN NOT NULL DEFAULT false -- a chunk of a company that had no merge bases when it was split
);
CREATE INDEX work_items_chunks ON work_items(parent) WHERE parent IS NOT NULL;
CREATE INDEX work_items_open ON work_items(job, stage, step) WHERE done_at IS NULL;
CREATE INDEX work_items_by_owner ON work_items(owner) WHERE owner IS NOT NULL;

-- One sync job per selection of maps and companies at a time: the processes
-- that run `dualsync sync` with the same selection share its items, and a
-- job that no process finished is joined again, re-running only what is not done.
CREATE TABLE sync_jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    selection   TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX sync_jobs_open ON sync_jobs(selection) WHERE ended_at IS NULL;

-- A session names the lease it writes under: the store's (dualsync.lease_unit
-- unset) or its worker's. Its writes are refused once that lease's epoch has
-- moved on: a worker that died is fenced by the first claim after its lease
-- ran out. The lease row is read under KEY SHARE: renewals (plain UPDATEs)
-- never wait for the statements in flight, while whoever moves an epoch
-- locks the row FOR UPDATE first, which waits for them.
CREATE OR REPLACE FUNCTION dualsync_fenced_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mine text := current_setting('dualsync.lease_epoch', true);
    held text := coalesce(nullif(current_setting('dualsync.lease_unit', true), ''), 'store');
BEGIN
    IF mine IS NOT NULL AND mine <> '' THEN
        PERFORM 1 FROM leases WHERE unit = held AND epoch = mine::bigint FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'fenced: another dualsync process holds the state store now (this process''s lease epoch % has passed); nothing was written', mine;
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON work_items FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON sync_jobs FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();

-- Merge bases and errors say which chunk of a shared sync recorded them: a
-- company's cleanup keeps only those of the attempt that finished each chunk
-- (an attempt cut short by a crash may have recorded keys that are gone since).
ALTER TABLE key_state ADD COLUMN chunk_item BIGINT;
ALTER TABLE errors ADD COLUMN chunk_item BIGINT;
