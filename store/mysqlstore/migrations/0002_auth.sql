-- 0002_auth: how the user authenticated (RFC 9470 step-up) and the DPoP key
-- the session is bound to (RFC 9449).
--
-- acr is store.Record.ACR (at most store.MaxACRLen = 128 bytes); amr is
-- store.Record.AMR joined by single spaces (its values hold no space; at
-- most 8 values of 32 bytes and 7 spaces = 263 bytes); jkt is the RFC 7638
-- SHA-256 thumbprint of the bound key, NULL when the session is unbound.
-- Rows written before this migration read back as unbound with no acr or amr.
--
-- MySQL has no ADD COLUMN IF NOT EXISTS (MariaDB has), so the ALTER is built
-- only if the columns are missing: the migration may run again after a
-- failure between the ALTER and the version record. One ALTER adds all
-- three columns, so they are there together or not at all.

SET @latch_ddl = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE latch_sessions ADD COLUMN acr VARBINARY(128) NOT NULL DEFAULT '''', ADD COLUMN amr VARBINARY(263) NOT NULL DEFAULT '''', ADD COLUMN jkt BINARY(32) NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'latch_sessions' AND column_name = 'jkt');
PREPARE latch_stmt FROM @latch_ddl;
EXECUTE latch_stmt;
DEALLOCATE PREPARE latch_stmt;
