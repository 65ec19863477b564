// Command latch runs latch's session server and talks to a running one.
//
//	latch serve [flags]                         run the server
//	latch sessions list <subject>               list a subject's live sessions
//	latch sessions revoke <session-id>          revoke one session
//	latch sessions revoke-subject <subject>     revoke all of a subject's sessions
//	latch keys list                             list the signing keys
//	latch keys rotate                           start a new signing key
//	latch keys revoke <kid>                     revoke a compromised signing key
//	latch bench                                 load a running server: ops/s, p50/p99
//	latch version                               print the version
//
// Every flag can also be set with a LATCH_* environment variable (--access-ttl
// is LATCH_ACCESS_TTL); a flag on the command line wins. Run any command with
// --help for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

const usage = `latch is a session server: services in any language create, verify,
refresh and revoke login sessions over HTTP.

Usage:
    latch serve [flags]                              run the server
    latch sessions list <subject>                    list a subject's live sessions
    latch sessions revoke <session-id>               revoke one session
    latch sessions revoke-subject <subject> [--except <session-id>]
                                                     revoke a subject's sessions
    latch keys list                                  list the signing keys
    latch keys rotate                                start a new signing key
    latch keys revoke <kid>                          revoke a compromised signing key
    latch bench [--baseline]                         load a running server: ops/s, p50/p99
    latch version                                    print the version

Every flag can also be set with a LATCH_* environment variable, e.g.
--access-ttl as LATCH_ACCESS_TTL; a flag given on the command line wins.
The client commands (sessions, keys) read the API key from LATCH_API_KEY or
from the file latch serve generated in its data directory.

Run "latch <command> --help" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	u := &ui{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		err = serve(ctx, u, rest)
	case "sessions":
		err = sessionsCmd(ctx, u, rest)
	case "keys":
		err = keysCmd(ctx, u, rest)
	case "bench":
		err = benchCmd(ctx, u, rest)
	case "version", "-version", "--version":
		err = version(u, rest)
	default:
		err = usageErrorf("unknown command %q", cmd).hint(`run "latch --help" for the list of commands`)
	}
	if errors.Is(err, errHelpShown) {
		return 0
	}
	return u.report(err)
}

// errHelpShown means --help was answered: exit 0.
var errHelpShown = errors.New("help shown")

// command describes a subcommand for its --help text.
type command struct {
	name  string // "sessions list"
	args  string // "<subject>"
	about string
}

// newFlags returns a flag set for cmd whose errors are reported by parse.
func newFlags(cmd command) *flag.FlagSet {
	fs := flag.NewFlagSet("latch "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// envName is the environment variable of a flag: --access-ttl is
// LATCH_ACCESS_TTL.
func envName(flagName string) string {
	return "LATCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse sets fs's flags from their LATCH_* variables, then from args (which
// win), and answers --help. It returns the positional arguments.
func parse(u *ui, cmd command, fs *flag.FlagSet, args []string) ([]string, error) {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := os.Getenv(name) // empty counts as unset
		if v == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			// The value is not echoed: a variable may hold a secret.
			envErr = usageErrorf("invalid %s for --%s: %s", name, f.Name, flagReason(f, v, err)).
				hint("unset it or fix its value (see latch %s --help); --%s on the command line overrides it", cmd.name, f.Name)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	// Allow flags after positional arguments: "sessions revoke-subject alice --except ses_…".
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(u.stdout, cmd, fs)
				return nil, errHelpShown
			}
			return nil, describeFlagError(fs, err).hint(`run "latch %s --help" for its flags`, cmd.name)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

// The flag package's messages, to be said in the command line's terms
// (--name, not -name) and with a reason a user can act on.
var (
	flagInvalidValue = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): (.*)$`)
	flagUndefined    = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagNoArgument   = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

func describeFlagError(fs *flag.FlagSet, err error) *exitError {
	msg := err.Error()
	if m := flagInvalidValue.FindStringSubmatch(msg); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			return usageErrorf("invalid value %q for --%s: %s", m[1], m[2], flagReason(f, m[1], errors.New(m[3])))
		}
	}
	if m := flagUndefined.FindStringSubmatch(msg); m != nil {
		// Key IDs are base64url thumbprints and may begin with "-".
		return usageErrorf("unknown flag --%s", m[1]).
			hint(`an argument that begins with "-", such as a key ID, goes after "--": latch keys revoke -- -AbC…`)
	}
	if m := flagNoArgument.FindStringSubmatch(msg); m != nil {
		return usageErrorf("--%s needs a value", m[1])
	}
	return usageErrorf("%s", msg)
}

// flagReason says why v is not a value of f, by f's type. It never quotes
// v.
func flagReason(f *flag.Flag, v string, err error) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return unquoteFlagErr(err)
	}
	switch g.Get().(type) {
	case time.Duration:
		if strings.Trim(v, "0123456789.") == "" {
			return "a duration needs a unit, e.g. 30m, 90s or 1h30m"
		}
		return "not a duration; use e.g. 30m, 90s or 1h30m"
	case int, int64, uint, uint64:
		return "not a whole number"
	case float64:
		return "not a number"
	case bool:
		return "not true or false"
	}
	return unquoteFlagErr(err)
}

// unquoteFlagErr drops the flag package's echo of the value: an
// environment variable may hold something that should not be printed.
func unquoteFlagErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return "bad value"
}

func printHelp(w io.Writer, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n    latch %s", cmd.about, cmd.name)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, " [flags]")
	}
	if cmd.args != "" {
		fmt.Fprint(w, " "+cmd.args)
	}
	fmt.Fprintln(w)
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags (each also as the LATCH_* variable shown):")
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n        %s", line, help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, " [%s]\n", envName(f.Name))
	})
}

func version(u *ui, args []string) error {
	cmd := command{name: "version", about: "Print latch's version."}
	fs := newFlags(cmd)
	pos, err := parse(u, cmd, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("version takes no arguments")
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(u.stdout, "latch %s %s\n", v, runtime.Version())
	return nil
}

// subcommand dispatches "latch <group> <sub> …".
func subcommand(ctx context.Context, u *ui, group, about string, args []string, subs map[string]func(context.Context, *ui, []string) error, order []string) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nUsage:\n", about)
		for _, s := range order {
			fmt.Fprintf(w, "    latch %s %s\n", group, s)
		}
		fmt.Fprintf(w, "\nRun \"latch %s <command> --help\" for its flags.\n", group)
	}
	if len(args) == 0 {
		help(u.stderr)
		return usageErrorf("latch %s needs a command", group)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		help(u.stdout)
		return errHelpShown
	}
	f, ok := subs[args[0]]
	if !ok {
		return usageErrorf("unknown command \"%s %s\"", group, args[0]).hint(`run "latch %s --help" for its commands`, group)
	}
	return f(ctx, u, args[1:])
}
