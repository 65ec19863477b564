-- 0003_auth: how the user authenticated (RFC 9470 step-up) and the DPoP key
-- the session is bound to (RFC 9449).
--
-- acr is store.Record.ACR; amr is store.Record.AMR joined by single spaces
-- (its values hold no space); jkt is the RFC 7638 SHA-256 thumbprint of the
-- bound key, NULL when the session is unbound. Rows written before this
-- migration read back as unbound with no acr or amr. The defaults are
-- constants, so PostgreSQL adds the columns without rewriting the table.

ALTER TABLE {{schema}}.sessions
    ADD COLUMN acr bytea NOT NULL DEFAULT ''::bytea CHECK (length(acr) <= 128),
    ADD COLUMN amr bytea NOT NULL DEFAULT ''::bytea CHECK (length(amr) <= 263),
    ADD COLUMN jkt bytea CHECK (length(jkt) = 32);
