-- 0004_events: the event log (store.EventLog): revocations and renewals,
-- written in the same transaction as the change they report and kept for
-- replay; subscribers poll it (MySQL has no LISTEN/NOTIFY).
--
-- seq orders events by commit. A transaction that writes events draws its
-- numbers from the one row of latch_event_seq with
-- UPDATE ... SET seq = LAST_INSERT_ID(seq + n): the row lock it takes is
-- held until that transaction commits, so the next event-writing
-- transaction waits and draws higher numbers only after the earlier ones are
-- visible. A reader that has seen seq n therefore never finds a lower one
-- later (an AUTO_INCREMENT column would not promise that: values are drawn
-- at insert, and transactions commit in any order). Only transactions that
-- write an event take the lock, and they take it last, after every session
-- row they lock, so it is never held while waiting for another lock.
CREATE TABLE IF NOT EXISTS latch_events (
    seq        BIGINT          NOT NULL PRIMARY KEY,
    at         BIGINT          NOT NULL COMMENT 'Unix nanoseconds',
    type       VARBINARY(64)   NOT NULL,
    session_id VARBINARY(18)   NOT NULL DEFAULT '',
    subject    VARBINARY(256)  NOT NULL DEFAULT '',
    except_id  VARBINARY(18)   NOT NULL DEFAULT '',
    reason     VARBINARY(64)   NOT NULL DEFAULT '',
    kid        VARBINARY(255)  NOT NULL DEFAULT '',
    KEY latch_events_at (at)
) ENGINE=InnoDB COMMENT='latch session events (store.EventLog); seq is the commit order';

CREATE TABLE IF NOT EXISTS latch_event_seq (
    id  TINYINT NOT NULL PRIMARY KEY,
    seq BIGINT  NOT NULL
) ENGINE=InnoDB;

INSERT IGNORE INTO latch_event_seq (id, seq) VALUES (1, 0);
