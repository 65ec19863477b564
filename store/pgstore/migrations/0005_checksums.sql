-- 0005_checksums: three CRC-32C checksums per row, one per group of columns
-- that one kind of statement writes (store/internal/sqlstore/checksum.go):
-- crc_main (Create, Update), crc_refresh (also RotateRefresh) and
-- crc_revoke (also the revocations), each a uint32 in a bigint, and
-- crc_version, the version they were written at: they are checked only
-- while it equals version, so a replica older than this migration (a
-- rolling upgrade), whose writes bump version and leave them alone, turns
-- the check of the rows it writes off instead of failing them. Rows written
-- before this migration have NULLs, which are not checked. No default:
-- PostgreSQL adds the columns without rewriting the table.

ALTER TABLE {{schema}}.sessions
    ADD COLUMN crc_main    bigint,
    ADD COLUMN crc_refresh bigint,
    ADD COLUMN crc_revoke  bigint,
    ADD COLUMN crc_version bigint;
