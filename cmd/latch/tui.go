package main

// Output rules of the latch command, after cmd/age/tui.go:
//
//   - stdout gets only the result a command was asked for (a table, a key
//     ID, JSON with --json), so it can be piped; everything else goes to
//     stderr.
//   - Every stderr line starts with "latch: ". Messages are lower case and
//     do not end with a period.
//   - An error is one "latch: error: …" line, followed by "latch: hint: …"
//     lines when there is something specific the user can do. Errors exit
//     with status 1, usage errors with status 2.
//   - Warnings are "latch: warning: …" lines.
//   - Nothing prints a token, the API key, the KEK or the demo password
//     given by the user; files that hold secrets are named by their path.
//     (The one exception is a demo password latch generated itself, which
//     the user needs to sign in.)
//   - The server's own log (serve) is JSON lines on stderr, from log/slog.

import (
	"errors"
	"fmt"
	"io"
)

// exitError carries an exit status and what to print for it.
type exitError struct {
	status int
	msg    string
	hints  []string
}

func (e *exitError) Error() string { return e.msg }

// errorf is a failure with exit status 1.
func errorf(format string, v ...any) *exitError {
	return &exitError{status: 1, msg: fmt.Sprintf(format, v...)}
}

// usageErrorf is a command-line mistake: exit status 2.
func usageErrorf(format string, v ...any) *exitError {
	return &exitError{status: 2, msg: fmt.Sprintf(format, v...)}
}

// hint adds a hint line to e.
func (e *exitError) hint(format string, v ...any) *exitError {
	e.hints = append(e.hints, fmt.Sprintf(format, v...))
	return e
}

// ui writes the command's stderr lines.
type ui struct {
	stdout, stderr io.Writer
}

func (u *ui) printf(format string, v ...any) {
	fmt.Fprintf(u.stderr, "latch: "+format+"\n", v...)
}

func (u *ui) warningf(format string, v ...any) {
	fmt.Fprintf(u.stderr, "latch: warning: "+format+"\n", v...)
}

// report prints err by the rules above and returns the exit status.
func (u *ui) report(err error) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if !errors.As(err, &e) {
		e = &exitError{status: 1, msg: err.Error()}
	}
	fmt.Fprintf(u.stderr, "latch: error: %s\n", e.msg)
	for _, h := range e.hints {
		fmt.Fprintf(u.stderr, "latch: hint: %s\n", h)
	}
	return e.status
}
