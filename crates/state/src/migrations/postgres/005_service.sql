-- The operators' service (`dualsync serve`): API tokens, stored as the SHA-256
-- of the token only, and the activity log of who did what.
CREATE TABLE api_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,              -- viewer | operator | admin
    sha256      TEXT NOT NULL UNIQUE,       -- hex
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    last_used   TEXT
);
CREATE TABLE activity (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    result   TEXT NOT NULL
);
-- An error skipped by an operator keeps why.
ALTER TABLE errors ADD COLUMN note TEXT;
