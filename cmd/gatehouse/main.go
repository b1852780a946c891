// Command gatehouse is the Gatehouse session and token server and its
// operator tools.
//
//	gatehouse serve                 run the server (embedded SQLite by default)
//	gatehouse user create|list|disable|enable|set-role
//	gatehouse sessions list|revoke
//	gatehouse keys list|rotate, keys resource add|list|remove
//	gatehouse events                security events
//	gatehouse bench                 load-test a running server over HTTP
//	gatehouse healthcheck           exit 0 when a running server is ready
//
// Every flag can also be set by environment: --access-ttl is
// GATEHOUSE_ACCESS_TTL. Flags on the command line win.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/gatehouse-auth/gatehouse/internal/redact"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // runtime failure (database, network)
	exitUsage    = 2 // bad flags or arguments
	exitConflict = 3 // the thing already exists
	exitNotFound = 4 // the named user or session does not exist
)

func commands() []command {
	return []command{
		serveCommand(),
		{name: "user", summary: "accounts: create, list, disable, enable, set-role, set-permissions, set-password, delete", subs: userCommands()},
		{name: "sessions", summary: "sessions: list, revoke (by user, by id, or all)", subs: sessionCommands()},
		keysCommand(),
		clientsCommand(),
		eventsCommand(),
		migrateCommand(),
		benchCommand(),
		healthcheckCommand(),
		{name: "version", summary: "print the version, commit and Go version", run: runVersion},
	}
}

// runVersion prints what the build info says about this binary.
func runVersion(_ context.Context, in *invocation) int {
	version, commit, goVersion := buildInfo()
	fmt.Fprintf(in.stdout, "gatehouse %s commit %s %s\n", version, commit, goVersion)
	return exitOK
}

// buildInfo is the module version, VCS commit and Go version of this
// binary, as the Go toolchain stamped them.
func buildInfo() (version, commit, goVersion string) {
	version, commit, goVersion = "(devel)", "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					commit += " (modified)"
				}
			}
		}
	}
	return version, commit, goVersion
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// parseFlags parses args into fs, then fills every flag not given on the
// command line from GATEHOUSE_<NAME> in the environment. It returns the exit
// code to use when parsing fails (or help was asked), or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || bad != nil {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("%s=%q: %w", env, redact.String(v), redact.Error(err))
			}
		}
	})
	if bad != nil {
		fmt.Fprintf(fs.Output(), "gatehouse: %v\n", bad)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "gatehouse: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	return -1
}

func envName(flagName string) string {
	return "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
