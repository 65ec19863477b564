-- 0003_replay: the replay cache (store.ReplayCache) — one row per one-time
-- value (a DPoP proof's jti, hashed by the caller) until its window ends.
-- A passed row counts as absent; Seen replaces it and Sweep deletes it.

CREATE TABLE IF NOT EXISTS latch_replay (
    k     VARBINARY(128) NOT NULL PRIMARY KEY,
    until BIGINT         NOT NULL,
    KEY latch_replay_until (until)
) ENGINE=InnoDB;
