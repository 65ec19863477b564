package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const defaultServer = "http://127.0.0.1:8080"

// client talks to a running latch serve with the API key.
type client struct {
	base   *url.URL
	apiKey string
	http   *http.Client
	json   bool
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	server, dataDir string
	insecure, json  bool
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.server, "server", defaultServer, "`URL` of the running latch serve")
	fs.StringVar(&cf.dataDir, "data-dir", defaultDataDir, "`directory` holding the api-key file latch serve generated, used when LATCH_API_KEY is unset")
	fs.BoolVar(&cf.insecure, "insecure", false, "allow sending the API key over plain HTTP to a non-loopback server")
	fs.BoolVar(&cf.json, "json", false, "print the server's JSON answer instead of a table")
}

func (cf *clientFlags) client() (*client, error) {
	base, err := url.Parse(cf.server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, usageErrorf("invalid --server: want an http:// or https:// URL").hint("e.g. --server %s", defaultServer)
	}
	if base.Scheme == "http" && !cf.insecure && !isLoopback(base.Hostname()) {
		return nil, usageErrorf("refusing to send the API key over plain HTTP to %s", base.Host).
			hint("use an https:// URL, or pass --insecure if the network is trusted")
	}
	key, err := clientAPIKey(cf.dataDir)
	if err != nil {
		return nil, err
	}
	return &client{base: base, apiKey: key, json: cf.json, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

func clientAPIKey(dataDir string) (string, error) {
	if k, ok := os.LookupEnv("LATCH_API_KEY"); ok && strings.TrimSpace(k) != "" {
		return strings.TrimSpace(k), nil
	}
	path := filepath.Join(dataDir, apiKeyFile)
	k, err := readSecretFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", errorf("no API key: LATCH_API_KEY is not set and %s does not exist", path).
			hint("set LATCH_API_KEY to the server's key, or run from the directory where latch serve created %s", path)
	}
	return k, err
}

// do sends a request and decodes a JSON answer into out (if not nil). A
// problem document becomes an error with hints.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = c.base.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		e := errorf("cannot reach the server at %s", c.base.Redacted())
		if errors.Is(err, syscall.ECONNREFUSED) {
			e.hint("is latch serve running? point --server (or LATCH_SERVER) at it")
		} else if ue := (*url.Error)(nil); errors.As(err, &ue) && ue.Timeout() {
			e.hint("the request timed out")
		} else if ne := (*net.OpError)(nil); errors.As(err, &ne) {
			e.hint("%v", ne.Err)
		}
		return e
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return errorf("reading the server's answer: %v", err)
	}
	if resp.StatusCode >= 300 {
		return problemError(resp, b)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return errorf("the server sent an answer latch cannot read").hint("is --server pointing at latch serve?")
	}
	return nil
}

func problemError(resp *http.Response, b []byte) error {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Code   string `json:"code"`
	}
	if json.Unmarshal(b, &p) != nil || p.Code == "" {
		return errorf("the server answered %s", resp.Status).hint("is --server pointing at latch serve?")
	}
	msg := strings.ToLower(p.Title)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	e := errorf("%s (%s)", msg, p.Code)
	switch p.Code {
	case "unauthorized":
		e.hint("the API key was refused; set LATCH_API_KEY to the server's key (or use --data-dir to find its api-key file)")
	case "store_unavailable":
		e.hint("the server cannot reach its session store; check its logs")
	}
	return e
}

var sessionsAbout = "List and revoke sessions on a running latch server."

func sessionsCmd(ctx context.Context, u *ui, args []string) error {
	return subcommand(ctx, u, "sessions", sessionsAbout, args, map[string]func(context.Context, *ui, []string) error{
		"list":           sessionsList,
		"revoke":         sessionsRevoke,
		"revoke-subject": sessionsRevokeSubject,
	}, []string{"list <subject>", "revoke <session-id>", "revoke-subject <subject> [--except <session-id>]"})
}

var keysAbout = "List, rotate and revoke the signing keys of a running latch server."

func keysCmd(ctx context.Context, u *ui, args []string) error {
	return subcommand(ctx, u, "keys", keysAbout, args, map[string]func(context.Context, *ui, []string) error{
		"list":   keysList,
		"rotate": keysRotate,
		"revoke": keysRevoke,
	}, []string{"list", "rotate", "revoke <kid>"})
}

// clientCommand parses a client command's flags and wants exactly nargs
// positional arguments.
func clientCommand(u *ui, cmd command, args []string, nargs int, extra func(*flag.FlagSet)) (*client, []string, error) {
	var cf clientFlags
	fs := newFlags(cmd)
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(u, cmd, fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != nargs {
		e := usageErrorf("latch %s takes %d argument(s), got %d", cmd.name, nargs, len(pos))
		if cmd.args != "" {
			e.hint("usage: latch %s %s", cmd.name, cmd.args)
		}
		return nil, nil, e
	}
	c, err := cf.client()
	return c, pos, err
}

type sessionJSON struct {
	ID            string    `json:"id"`
	Subject       string    `json:"subject"`
	CreatedAt     time.Time `json:"created_at"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	IP            string    `json:"ip"`
	UserAgent     string    `json:"user_agent"`
}

func sessionsList(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "sessions list", args: "<subject>", about: "List a subject's live sessions, most recently seen first."}
	c, pos, err := clientCommand(u, cmd, args, 1, nil)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(pos[0])+"/sessions", nil, &raw); err != nil {
		return err
	}
	if c.json {
		return printJSON(u.stdout, raw)
	}
	var out struct {
		Sessions []sessionJSON `json:"sessions"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	if len(out.Sessions) == 0 {
		u.printf("%s has no live sessions", pos[0])
		return nil
	}
	tw := tabwriter.NewWriter(u.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLAST SEEN\tIP\tEXPIRES\tUSER AGENT")
	for _, s := range out.Sessions {
		exp := s.IdleExpiresAt
		if s.ExpiresAt.Before(exp) {
			exp = s.ExpiresAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, fmtTime(s.LastSeenAt), dash(s.IP), fmtTime(exp), dash(truncate(s.UserAgent, 60)))
	}
	return tw.Flush()
}

func sessionsRevoke(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "sessions revoke", args: "<session-id>", about: "Revoke one session at once (its tokens stop working on every replica)."}
	c, pos, err := clientCommand(u, cmd, args, 1, nil)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(pos[0], "ses_") {
		return usageErrorf("%q is not a session ID", pos[0]).hint("session IDs start with ses_; find them with: latch sessions list <subject>")
	}
	if err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(u.stdout, "revoked %s\n", pos[0])
	return nil
}

func sessionsRevokeSubject(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "sessions revoke-subject", args: "<subject>", about: "Revoke every live session of a subject (sign out everywhere), optionally but one."}
	var except string
	c, pos, err := clientCommand(u, cmd, args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&except, "except", "", "`session-id` to keep")
	})
	if err != nil {
		return err
	}
	path := "/v1/subjects/" + url.PathEscape(pos[0]) + "/sessions"
	if except != "" {
		path += "?except=" + url.QueryEscape(except)
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodDelete, path, nil, &raw); err != nil {
		return err
	}
	if c.json {
		return printJSON(u.stdout, raw)
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	noun := "sessions"
	if out.Revoked == 1 {
		noun = "session"
	}
	fmt.Fprintf(u.stdout, "revoked %d %s\n", out.Revoked, noun)
	return nil
}

func keysList(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "keys list", about: "List the signing keys: pending (published, not signing yet), active and retired."}
	c, _, err := clientCommand(u, cmd, args, 0, nil)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &raw); err != nil {
		return err
	}
	if c.json {
		return printJSON(u.stdout, raw)
	}
	var out struct {
		Keys []struct {
			Kid       string    `json:"kid"`
			Alg       string    `json:"alg"`
			State     string    `json:"state"`
			Activates time.Time `json:"activates_at"`
			Retires   time.Time `json:"retires_at"`
			Removes   time.Time `json:"removes_at"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	tw := tabwriter.NewWriter(u.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tSIGNS FROM\tRETIRES\tREMOVED")
	for _, k := range out.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Kid, k.Alg, k.State, fmtTime(k.Activates), fmtTime(k.Retires), fmtTime(k.Removes))
	}
	return tw.Flush()
}

func keysRotate(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "keys rotate", about: "Add a new signing key. It is published in JWKS at once and starts signing after the pre-publication period, so cached JWKS documents know it first."}
	c, _, err := clientCommand(u, cmd, args, 0, nil)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, &raw); err != nil {
		return err
	}
	if c.json {
		return printJSON(u.stdout, raw)
	}
	var out struct {
		Kid       string    `json:"kid"`
		Activates time.Time `json:"activates_at"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	fmt.Fprintln(u.stdout, out.Kid)
	if !out.Activates.IsZero() {
		u.printf("key %s is published now and starts signing at %s", out.Kid, fmtTime(out.Activates))
	}
	return nil
}

func keysRevoke(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "keys revoke", args: "<kid>", about: "Revoke a compromised signing key: it leaves JWKS at once, every token it signed is refused on every replica, and a fresh key signs from now on (without pre-publication, if the revoked key was signing). Clients refresh to get tokens of the fresh key."}
	c, pos, err := clientCommand(u, cmd, args, 1, nil)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(pos[0])+"/revoke", nil, &raw); err != nil {
		return err
	}
	if c.json {
		return printJSON(u.stdout, raw)
	}
	var out struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	fmt.Fprintln(u.stdout, out.Kid)
	u.printf("key %s is revoked; key %s signs from now on", pos[0], out.Kid)
	return nil
}

func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return errorf("the server sent an answer latch cannot read")
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
