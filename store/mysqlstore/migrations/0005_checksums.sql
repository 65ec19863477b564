-- 0005_checksums: three CRC-32C checksums per row, one per group of columns
-- that one kind of statement writes (store/internal/sqlstore/checksum.go):
-- crc_main (Create, Update), crc_refresh (also RotateRefresh) and
-- crc_revoke (also the revocations), each a uint32 in a BIGINT, and
-- crc_version, the version they were written at: they are checked only
-- while it equals version, so a replica older than this migration (a
-- rolling upgrade), whose writes bump version and leave them alone, turns
-- the check of the rows it writes off instead of failing them. Rows written
-- before this migration have NULLs, which are not checked.
--
-- Built only if the columns are missing, as 0002: the migration may run
-- again after a failure between the ALTER and the version record.

SET @latch_ddl = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE latch_sessions ADD COLUMN crc_main BIGINT NULL, ADD COLUMN crc_refresh BIGINT NULL, ADD COLUMN crc_revoke BIGINT NULL, ADD COLUMN crc_version BIGINT NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'latch_sessions' AND column_name = 'crc_main');
PREPARE latch_stmt FROM @latch_ddl;
EXECUTE latch_stmt;
DEALLOCATE PREPARE latch_stmt;
