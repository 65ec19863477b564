-- 0004_replay: the replay cache (store.ReplayCache) — one row per one-time
-- value (a DPoP proof's jti, hashed by the caller) until its window ends.
-- A passed row counts as absent; Seen overwrites it and Sweep deletes it.

CREATE TABLE {{schema}}.replay (
    key   bytea  PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    until bigint NOT NULL
);
CREATE INDEX replay_until_idx ON {{schema}}.replay (until);
