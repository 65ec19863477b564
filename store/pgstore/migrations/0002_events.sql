-- 0002_events: the event log (store.EventLog): revocations and renewals,
-- written by the same statement as the change they report, kept for replay
-- and announced with NOTIFY at commit.
--
-- seq orders events by commit: the BEFORE ROW trigger takes a transaction-
-- scoped advisory lock before it draws seq, so a transaction that wrote an
-- event commits (and releases the lock) before the next one draws a higher
-- seq. A reader that has seen seq n therefore never finds a lower one later
-- (a plain bigserial would not promise that: numbers are drawn before
-- commit, in any order). Only transactions that write an event take the
-- lock; they are revocations and renewals, not validations.

CREATE SEQUENCE {{schema}}.events_seq;

CREATE TABLE {{schema}}.events (
    seq        bigint PRIMARY KEY,          -- set by events_order
    at         bigint NOT NULL,             -- Unix nanoseconds
    type       text   NOT NULL,
    session_id bytea  NOT NULL DEFAULT ''::bytea,
    subject    bytea  NOT NULL DEFAULT ''::bytea,
    except_id  bytea  NOT NULL DEFAULT ''::bytea,
    reason     bytea  NOT NULL DEFAULT ''::bytea,
    kid        text   NOT NULL DEFAULT ''
);

CREATE INDEX events_at_idx ON {{schema}}.events (at);

CREATE FUNCTION {{schema}}.events_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1818326117, 0); -- class "late", see lockClassEvents
    NEW.seq := nextval(format('%I.events_seq', TG_TABLE_SCHEMA)::regclass);
    RETURN NEW;
END $$;

CREATE TRIGGER events_order BEFORE INSERT ON {{schema}}.events
    FOR EACH ROW EXECUTE FUNCTION {{schema}}.events_order();

-- The channel is per schema; identical notifications of one transaction are
-- folded into one by PostgreSQL.
CREATE FUNCTION {{schema}}.events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latch_events_' || left(md5(TG_TABLE_SCHEMA), 16), '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON {{schema}}.events
    FOR EACH ROW EXECUTE FUNCTION {{schema}}.events_notify();
