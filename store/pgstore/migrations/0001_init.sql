-- 0001_init: session records, the subject index and the signing keyring.
--
-- {{schema}} is replaced by the quoted schema name before this runs.
--
-- Times are bigint Unix nanoseconds, 0 for "never" (the zero time.Time), the
-- same encoding as store.Record.MarshalBinary: a record reads back exactly as
-- it was written, and every comparison is an integer comparison. Strings are
-- bytea because the contract treats them as opaque bytes (a User-Agent header
-- may hold bytes that are not UTF-8; text refuses those and NUL).

CREATE TABLE {{schema}}.sessions (
    id                 bytea   PRIMARY KEY CHECK (length(id) = 18),
    subject            bytea   NOT NULL,
    version            bigint  NOT NULL,
    verifier_hash      bytea   NOT NULL CHECK (length(verifier_hash) = 32),
    csrf_secret        bytea   NOT NULL CHECK (length(csrf_secret) = 32),
    refresh_key        bytea   NOT NULL CHECK (length(refresh_key) = 32),
    refresh_current    bytea   NOT NULL CHECK (length(refresh_current) = 32),
    refresh_previous   bytea   NOT NULL CHECK (length(refresh_previous) = 32),
    refresh_rotated_at bigint  NOT NULL,
    refresh_generation bigint  NOT NULL,
    created_at         bigint  NOT NULL,
    auth_time          bigint  NOT NULL,
    last_seen_at       bigint  NOT NULL,
    idle_expires_at    bigint  NOT NULL,
    expires_at         bigint  NOT NULL,
    deadline           bigint  NOT NULL, -- least(idle_expires_at, expires_at)
    revoked_at         bigint  NOT NULL DEFAULT 0, -- 0: not revoked
    revoke_reason      bytea   NOT NULL DEFAULT ''::bytea,
    ip                 bytea   NOT NULL DEFAULT ''::bytea,
    user_agent         bytea   NOT NULL DEFAULT ''::bytea,
    data               bytea,
    claims             bytea
);

COMMENT ON TABLE {{schema}}.sessions IS
    'latch session records. *_at, auth_time and deadline are Unix nanoseconds (0 = unset); '
    'to read one: to_timestamp(created_at / 1e9). Strings are bytea: convert_from(subject, ''UTF8'').';

-- The subject index: live (unrevoked) sessions of a subject, most recently
-- seen first. Revoked rows leave it at once; expired rows when swept.
CREATE INDEX sessions_subject_live_idx
    ON {{schema}}.sessions (subject, last_seen_at DESC, created_at DESC)
    WHERE revoked_at = 0;

-- The sweeper's index.
CREATE INDEX sessions_deadline_idx ON {{schema}}.sessions (deadline);

-- One row: the signing keyring, an opaque (encrypted) blob with a version
-- for compare-and-swap.
CREATE TABLE {{schema}}.keyring (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint  NOT NULL CHECK (version > 0),
    blob    bytea   NOT NULL
);
