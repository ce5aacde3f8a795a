-- Leases on work, decided by this server's clock (owner.rs). One unit for
-- now, 'store': the process that syncs through this store. The epoch grows
-- with every claim: the token that tells a stale holder from the current one.
CREATE TABLE leases (
    unit        TEXT PRIMARY KEY,
    owner       TEXT,                   -- the holder's worker id; NULL when free
    epoch       BIGINT NOT NULL DEFAULT 0,
    pid         BIGINT,
    host        TEXT,
    command     TEXT,
    since       TIMESTAMPTZ,
    expires_at  TIMESTAMPTZ
);
