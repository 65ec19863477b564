// Package sqlstore holds what latch's SQL stores (pgstore on pgx, mysqlstore
// on database/sql) share, so a fix lands in both: the row layout (column
// list, parameters, decoding), the error type that never shows a DSN
// password, and the migration runner (embedded NNNN_name.sql files, a
// schema_migrations table, the pending list), and the event log's row
// (EventColumns, EventArgs, EventRow).
//
// Both stores keep a session as one row with a column per field; times are
// BIGINT Unix nanoseconds (store.UnixNano, 0 = unset), strings and blobs are
// binary columns, exactly as the store contract's "Field bounds" asks, so
// a record reads back byte for byte and every comparison is an integer or
// byte comparison in SQL.
package sqlstore
