package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
)

func TestOpenStoreURLs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"memory:", "bolt:" + filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), "bbolt:" + filepath.Join(dir, "c", "d.db")} {
		s, err := openStore(ctx, u)
		if err != nil {
			t.Errorf("openStore(%q): %v", u, err)
			continue
		}
		if err := store.Ping(ctx, s); err != nil {
			t.Errorf("%q: ping: %v", u, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%q: close: %v", u, err)
		}
	}
	for _, u := range []string{"nosuch://x", "memory:x", "bolt:", "http://example.com"} {
		if _, err := openStore(ctx, u); err == nil {
			t.Errorf("openStore(%q) succeeded", u)
		}
	}
	// A bbolt file open in another process (here: another Store) is refused with a hint.
	path := filepath.Join(dir, "locked.db")
	s, err := openStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = openStore(ctx, path)
	var e *exitError
	if !errors.As(err, &e) || len(e.hints) == 0 {
		t.Errorf("second open of a bbolt file: %v, want an error with a hint", err)
	}
}

// TestServeOnRedis runs the server on a private redis-server: the keyring
// lives in Redis, sealed under the KEK, and when Redis goes away the server
// fails closed.
func TestServeOnRedis(t *testing.T) {
	rs := testredis.StartServer(t)
	u := "redis://" + rs.Addr() + "/0?timeout=500ms"
	ctx := context.Background()
	st, err := openStore(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := loadKEK(st, t.TempDir()); err == nil {
		t.Error("a shared store started without LATCH_KEK")
	}
	srv, err := server.New(ctx, server.Options{
		Store: st.Store, APIKey: scriptAPIKey, KEK: bytes.Repeat([]byte{3}, 32),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := srv.Manager()
	is, err := m.Create(ctx, latch.NewSession{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Validate(ctx, is.SessionToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Verifier().Verify(ctx, is.AccessToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/readyz"); c != 200 {
		t.Fatalf("readyz with Redis up: %d", c)
	}
	rs.Kill()
	if c := get("/readyz"); c != 503 {
		t.Errorf("readyz with Redis down: %d, want 503", c)
	}
	if _, err := m.Validate(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrUnavailable) {
		t.Errorf("validate with Redis down: %v, want ErrUnavailable", err)
	}
}

// TestOpenPostgres opens the test database by URL (migrations included).
func TestOpenPostgres(t *testing.T) {
	dsn := os.Getenv("LATCH_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	st, err := openStore(context.Background(), dsn)
	if err != nil {
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skipf("PostgreSQL unreachable (set LATCH_TEST_POSTGRES): %v", err)
	}
	defer st.Close()
	if err := store.Ping(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

// TestOpenMySQL opens the MariaDB/MySQL test database by URL (migrations
// included), and a URL with a password never shows it in the error.
func TestOpenMySQL(t *testing.T) {
	dsn := os.Getenv("LATCH_TEST_MYSQL_URL")
	if dsn == "" {
		dsn = "mysql://root@127.0.0.1:3306/test"
	}
	st, err := openStore(context.Background(), dsn)
	if err != nil {
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skipf("MySQL/MariaDB unreachable (set LATCH_TEST_MYSQL_URL): %v", err)
	}
	defer st.Close()
	if err := store.Ping(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	const pw = "s3cret-Pa55word-never-shown"
	_, err = openStore(context.Background(), "mysql://root:"+pw+"@127.0.0.1:1/test")
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("opening an unreachable mysql:// store: %v (must fail without the password)", err)
	}
}
