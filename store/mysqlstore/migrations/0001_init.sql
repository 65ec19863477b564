-- 0001_init: session records, the subject index, per-subject lock slots and
-- the signing keyring, in the database the DSN names, all prefixed latch_.
--
-- Times are BIGINT Unix nanoseconds, 0 for "never" (the zero time.Time), as
-- store.UnixNano encodes them: a record reads back exactly as written (a
-- DATETIME(6) would keep microseconds), and every comparison is an integer
-- comparison. Strings are binary types because the contract treats them as
-- opaque bytes; Data and Claims are MEDIUMBLOB because store.MaxValueLen
-- (65,536) is one byte more than a BLOB holds. Each statement ends a line
-- with ";" (the runner sends one statement per call). MySQL DDL is not
-- transactional, so every statement may run again after a partial failure.

CREATE TABLE IF NOT EXISTS latch_sessions (
    id                 BINARY(18)      NOT NULL,
    subject            VARBINARY(256)  NOT NULL,
    version            BIGINT          NOT NULL,
    verifier_hash      BINARY(32)      NOT NULL,
    csrf_secret        BINARY(32)      NOT NULL,
    refresh_key        BINARY(32)      NOT NULL,
    refresh_current    BINARY(32)      NOT NULL,
    refresh_previous   BINARY(32)      NOT NULL,
    refresh_rotated_at BIGINT          NOT NULL,
    refresh_generation BIGINT          NOT NULL,
    created_at         BIGINT          NOT NULL,
    auth_time          BIGINT          NOT NULL,
    last_seen_at       BIGINT          NOT NULL,
    idle_expires_at    BIGINT          NOT NULL,
    expires_at         BIGINT          NOT NULL,
    deadline           BIGINT          NOT NULL COMMENT 'least(idle_expires_at, expires_at)',
    revoked_at         BIGINT          NOT NULL DEFAULT 0 COMMENT '0: not revoked',
    revoke_reason      VARBINARY(64)   NOT NULL DEFAULT '',
    ip                 VARBINARY(64)   NOT NULL DEFAULT '',
    user_agent         VARBINARY(1024) NOT NULL DEFAULT '',
    data               MEDIUMBLOB      NULL,
    claims             MEDIUMBLOB      NULL,
    PRIMARY KEY (id),
    -- The subject index: a subject's unrevoked sessions, most recently seen
    -- first (revoked_at = 0 selects them; InnoDB has no partial indexes).
    KEY latch_sessions_subject (subject, revoked_at, last_seen_at, created_at),
    -- The sweeper's index.
    KEY latch_sessions_deadline (deadline)
) ENGINE=InnoDB COMMENT='latch session records; times are Unix nanoseconds (0 = unset): FROM_UNIXTIME(created_at DIV 1000000000)';

-- Create-with-eviction and RevokeSubject lock the slot of their subject
-- (SubjectTag % 4096) for the length of their transaction, so they are
-- serialised per subject without gap locks on the session rows.
CREATE TABLE IF NOT EXISTS latch_subject_locks (
    slot SMALLINT UNSIGNED NOT NULL PRIMARY KEY
) ENGINE=InnoDB;

INSERT IGNORE INTO latch_subject_locks (slot)
SELECT a.n * 256 + b.n * 16 + c.n FROM
    (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15) a CROSS JOIN
    (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15) b CROSS JOIN
    (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15) c;

-- One row: the signing keyring, an opaque (encrypted) blob with a version
-- for compare-and-swap.
CREATE TABLE IF NOT EXISTS latch_keyring (
    id      TINYINT    NOT NULL PRIMARY KEY,
    version BIGINT     NOT NULL,
    ring    MEDIUMBLOB NOT NULL
) ENGINE=InnoDB;
