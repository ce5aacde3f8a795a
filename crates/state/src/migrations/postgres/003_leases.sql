-- Leases on work, decided by this server's clock (owner.rs). One unit for
-- now, 'store': the process that syncs through this store. The epoch grows
-- with every claim: the token that tells a stale holder from the current one.
-- The incarnation names this store in the apps' fence rows, so that a store
-- made anew (epochs from 1 again) is not fenced by its predecessor's epochs.
CREATE TABLE leases (
    unit        TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    owner       TEXT,                   -- the holder's worker id; NULL when free
    epoch       BIGINT NOT NULL DEFAULT 0,
    pid         BIGINT,
    host        TEXT,
    command     TEXT,
    since       TIMESTAMPTZ,
    renewed_at  TIMESTAMPTZ,            -- the holder's last heartbeat
    expires_at  TIMESTAMPTZ,
    takeovers   BIGINT NOT NULL DEFAULT 0 -- claims of a lease whose holder had not handed it back
);

-- State written by a process whose lease has passed is refused: a session
-- that holds the store sets dualsync.lease_epoch, and every statement that
-- changes the state reads the lease under a shared lock first (a new claim
-- waits for the statements in flight). Sessions without the setting (status,
-- pause, resume, resolve) are people's commands and are not fenced.
CREATE FUNCTION dualsync_fenced_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mine text := current_setting('dualsync.lease_epoch', true);
BEGIN
    IF mine IS NOT NULL AND mine <> '' THEN
        PERFORM 1 FROM leases WHERE unit = 'store' AND epoch = mine::bigint FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'fenced: another dualsync process holds the state store now (this process''s lease epoch % has passed); nothing was written', mine;
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON runs FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON run_partitions FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON errors FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON partitions FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON key_state FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON map_states FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON cursors FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
CREATE TRIGGER dualsync_fence BEFORE INSERT OR UPDATE OR DELETE ON conflicts FOR EACH STATEMENT EXECUTE FUNCTION dualsync_fenced_write();
