package latch

import (
	"fmt"
	"io"
	"log/slog"
)

// Token is a credential issued by the Manager: a session token, a refresh
// token or an access token. Its text is reachable only through Reveal:
// printing, formatting with any verb, or logging it with log/slog shows a
// redacted form, so a token cannot reach a log line by accident.
//
// The zero Token is empty.
type Token struct{ s string }

// Reveal returns the token's text, to be sent to its holder: in a cookie, a
// response body or a header. Never put it in a URL or a log.
func (t Token) Reveal() string { return t.s }

// IsZero reports whether t is empty.
func (t Token) IsZero() bool { return t.s == "" }

// String returns a redacted form that keeps only the kind prefix.
func (t Token) String() string {
	switch {
	case t.s == "":
		return ""
	case len(t.s) > 4 && t.s[3] == '_':
		return t.s[:4] + "[REDACTED]"
	default:
		return "[REDACTED]"
	}
}

// GoString redacts too, for %#v.
func (t Token) GoString() string { return "latch.Token(" + t.String() + ")" }

// Format redacts for every fmt verb.
func (t Token) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// LogValue redacts for log/slog.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }
