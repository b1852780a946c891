package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// command is every CLI command, in one shape: `gatehouse NAME [flags]`, or
// a group whose commands are commands too (`gatehouse user create`,
// `gatehouse keys resource add`). The runner parses the flags (command
// line first, then GATEHOUSE_<FLAG>), checks the required ones, opens the
// server's database for the commands that need it, and prints help on
// stdout for --help and on stderr, with exit code 2, for a usage error.
type command struct {
	name    string
	summary string // one line, in the list of commands
	about   string // its help's description (default: summary)
	// usage is what follows the command in its synopsis: its flags, and
	// a note in parentheses.
	usage    string
	flags    func(fs *flag.FlagSet)
	required []string // flags that must be given
	// db: the command works on the server's database. It gets the store
	// flags (--db, --secret-file…), refuses a SQLite file that does not
	// exist (it would create an empty one and report on that), and runs
	// with in.app open.
	db   bool
	run  func(ctx context.Context, in *invocation) int
	subs []command
}

// invocation is what a command's run works with.
type invocation struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	args           []string // what the flags left
	app            *app     // db commands only
}

// exec runs c, named path (e.g. "user create"), with args.
func (c command) exec(ctx context.Context, path string, args []string, in invocation) int {
	if len(c.subs) > 0 {
		return c.dispatch(ctx, path, args, in)
	}
	fs := flag.NewFlagSet("gatehouse "+path, flag.ContinueOnError)
	fs.SetOutput(in.stderr)
	var sc storeConfig
	if c.db {
		sc.bindOperator(fs)
	}
	if c.flags != nil {
		c.flags(fs)
	}
	fs.Usage = func() { c.help(fs.Output(), path, fs) }
	if wantsHelp(args) {
		fs.SetOutput(in.stdout)
		c.help(in.stdout, path, fs)
		return exitOK
	}
	if code := parseFlags(fs, args, in.getenv); code >= 0 {
		return code
	}
	for _, name := range c.required {
		if f := fs.Lookup(name); f != nil && f.Value.String() == "" {
			fmt.Fprintf(in.stderr, "gatehouse %s: --%s is required\n", path, name)
			return exitUsage
		}
	}
	in.args = fs.Args()
	if c.db {
		if err := requireExistingDB(sc.DB); err != nil {
			fmt.Fprintf(in.stderr, "gatehouse %s: %v\n", path, err)
			return exitFailure
		}
		a, err := openApp(ctx, sc, auth.Config{Logger: cliLogger(in.stderr, sc)}, in.getenv)
		if err != nil {
			fmt.Fprintf(in.stderr, "gatehouse %s: %v\n", path, err)
			return exitFailure
		}
		defer a.close()
		in.app = a
	}
	return c.run(ctx, &in)
}

// dispatch runs one of a group's commands.
func (c command) dispatch(ctx context.Context, path string, args []string, in invocation) int {
	if len(args) == 0 {
		c.list(in.stderr, path)
		return exitUsage
	}
	if args[0] == "help" || wantsHelp(args[:1]) {
		c.list(in.stdout, path)
		return exitOK
	}
	for _, sub := range c.subs {
		if sub.name == args[0] {
			return sub.exec(ctx, strings.TrimSpace(path+" "+sub.name), args[1:], in)
		}
	}
	fmt.Fprintf(in.stderr, "gatehouse %s: unknown command %q\n\n", path, args[0])
	c.list(in.stderr, path)
	return exitUsage
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// help is a command's synopsis, its summary and its flags.
func (c command) help(w io.Writer, path string, fs *flag.FlagSet) {
	about := c.about
	if about == "" {
		about = strings.ToUpper(c.summary[:1]) + c.summary[1:] + "."
	}
	fmt.Fprintf(w, "Usage: gatehouse %s %s\n\n%s\n", path, c.usage, about)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags (each also GATEHOUSE_<FLAG> in the environment):")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	if c.db {
		fmt.Fprintln(w, "\nExit codes: 0 done, 1 failure, 2 usage or invalid input, 3 already exists, 4 not found.")
	}
}

// list is a group's commands.
func (c command) list(w io.Writer, path string) {
	name := strings.TrimSpace("gatehouse " + path)
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\n%s\n\nCommands:\n", name, c.summary)
	width := 0
	for _, s := range c.subs {
		width = max(width, len(s.name))
	}
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for its flags.\n", name)
	if path == "" {
		fmt.Fprintln(w, "Every flag can be set in the environment as GATEHOUSE_<FLAG> (--access-ttl: GATEHOUSE_ACCESS_TTL).")
	}
}

// cli is the whole command tree.
func cli() command {
	return command{summary: "Gatehouse: sessions and tokens you can revoke.", subs: commands()}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli().exec(ctx, "", args, invocation{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv})
}
