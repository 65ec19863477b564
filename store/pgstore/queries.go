package pgstore

import (
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// queries holds every statement with the schema name baked in (schema-
// qualified names rather than search_path, so a Store works on a pool shared
// with other code). pgx prepares and caches each on first use per connection.
type queries struct {
	get, insert, evict, update, rotate, revoke, revokeSubject, list, sweep string
	lockSubject                                                            string
	loadKeyring, insertKeyring, updateKeyring, keyringVersion              string
	sessions                                                               string // the qualified table name
	schema                                                                 string // unquoted
}

func buildQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{s}", s, "{cols}", sqlstore.Columns)
	return queries{
		schema:   schema,
		sessions: s + ".sessions",
		get:      r.Replace(`SELECT {cols} FROM {s}.sessions WHERE id = $1`),

		// Serialises Create and RevokeSubject per subject until the end of
		// their (implicit) transaction. Two-int4 form, class lockClassSubject.
		lockSubject: `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`,

		insert: r.Replace(`INSERT INTO {s}.sessions (id, subject, version, verifier_hash, csrf_secret,
			refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
			created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
			revoked_at, revoke_reason, ip, user_agent, data, claims, acr, amr, jkt, deadline,
			crc_main, crc_refresh, crc_revoke, crc_version)
			VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
			$25, $26, $27, 1)`),

		// $1 subject, $2 the new ID, $3 now (also the revocation time),
		// $4 how many other live sessions to keep, $5 the reason, $6 its
		// crc_revoke. Each eviction is an event (0002_events.sql).
		evict: r.Replace(`WITH v AS (
				UPDATE {s}.sessions SET revoked_at = $3, revoke_reason = $5, ` + sqlstore.SetRevokeSum("$6") + `, version = version + 1
				WHERE id IN (
					SELECT id FROM {s}.sessions
					WHERE subject = $1 AND revoked_at = 0 AND deadline > $3 AND id <> $2
					ORDER BY last_seen_at DESC, created_at DESC, id DESC
					OFFSET $4)
				AND revoked_at = 0
				RETURNING id),
			e AS (INSERT INTO {s}.events (at, type, session_id, subject, reason)
				SELECT $3, 'session.revoked', id, $1, $5 FROM v)
			SELECT id FROM v`),

		// Compare-and-swap on version; the second column tells "not found"
		// from "conflict" in the same round trip. A new verifier hash is a
		// renewal: an event. (o reads the version the caller read, which
		// committed before this statement's snapshot.)
		update: r.Replace(`WITH o AS (SELECT verifier_hash FROM {s}.sessions WHERE id = $1 AND version = $2),
			u AS (
				UPDATE {s}.sessions SET version = version + 1,
					verifier_hash = $3, csrf_secret = $4,
					refresh_key = $5, refresh_current = $6, refresh_previous = $7,
					refresh_rotated_at = $8, refresh_generation = $9,
					created_at = $10, auth_time = $11, last_seen_at = $12,
					idle_expires_at = $13, expires_at = $14,
					revoked_at = $15, revoke_reason = $16, ip = $17, user_agent = $18,
					data = $19, claims = $20, acr = $21, amr = $22, jkt = $23, deadline = $24,
					crc_main = $25, crc_refresh = $26, crc_revoke = $27, crc_version = version + 1
				WHERE id = $1 AND version = $2 AND revoked_at = 0
				RETURNING subject),
			e AS (INSERT INTO {s}.events (at, type, session_id, subject)
				SELECT $12, 'session.renewed', $1, u.subject FROM u, o WHERE o.verifier_hash <> $3)
			SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM {s}.sessions WHERE id = $1)`),

		// One statement: compares the current refresh hash and rotates.
		rotate: r.Replace(`UPDATE {s}.sessions SET version = version + 1,
				refresh_key = $3, refresh_current = $4, refresh_previous = $5,
				refresh_rotated_at = $6, refresh_generation = $7,
				last_seen_at = $8, idle_expires_at = $9, deadline = LEAST($9, expires_at),
				` + sqlstore.SetRefreshSum("$10") + `
			WHERE id = $1 AND refresh_current = $2 AND revoked_at = 0
			RETURNING {cols}`),

		revoke: r.Replace(`WITH u AS (
				UPDATE {s}.sessions SET revoked_at = $3, revoke_reason = $2, ` + sqlstore.SetRevokeSum("$4") + `, version = version + 1
				WHERE id = $1 AND revoked_at = 0
				RETURNING subject),
			e AS (INSERT INTO {s}.events (at, type, session_id, subject, reason)
				SELECT $3, t, $1, u.subject, $2 FROM u,
					unnest(CASE WHEN $2 = 'refresh-reuse'::bytea THEN ARRAY['session.revoked', 'session.refresh_reuse']
						ELSE ARRAY['session.revoked'] END) WITH ORDINALITY AS x(t, n)
				ORDER BY n)
			SELECT EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM {s}.sessions WHERE id = $1)`),

		revokeSubject: r.Replace(`WITH v AS (
				UPDATE {s}.sessions SET revoked_at = $4, revoke_reason = $3, ` + sqlstore.SetRevokeSum("$5") + `, version = version + 1
				WHERE subject = $1 AND revoked_at = 0 AND id <> $2
				RETURNING id),
			e AS (INSERT INTO {s}.events (at, type, subject, except_id, reason) VALUES ($4, 'subject.revoked', $1, $2, $3))
			SELECT id FROM v`),

		list: r.Replace(`SELECT {cols} FROM {s}.sessions
			WHERE subject = $1 AND revoked_at = 0 AND deadline > $2
			ORDER BY last_seen_at DESC, created_at DESC, id DESC`),

		// One small batch; Sweep loops. SKIP LOCKED: rows another call is
		// writing are left for the next sweep instead of waited for.
		sweep: r.Replace(`DELETE FROM {s}.sessions WHERE id IN (
				SELECT id FROM {s}.sessions WHERE deadline <= $1
				LIMIT $2 FOR UPDATE SKIP LOCKED)`),

		loadKeyring:    r.Replace(`SELECT blob, version FROM {s}.keyring WHERE id`),
		keyringVersion: r.Replace(`SELECT version FROM {s}.keyring WHERE id`),
		insertKeyring:  r.Replace(`INSERT INTO {s}.keyring (id, version, blob) VALUES (true, 1, $1) ON CONFLICT (id) DO NOTHING`),
		updateKeyring:  r.Replace(`UPDATE {s}.keyring SET blob = $1, version = version + 1 WHERE id AND version = $2`),
	}
}
