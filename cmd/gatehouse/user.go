package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// Operator commands. They open the same database as the server and go
// through the same domain code, so their revocations are written to the
// revocation log that a running server follows (within half a second), and
// SQLite's locking makes them safe while it runs.

// subcommand is one verb of a command group.
type subcommand struct {
	name, usage string
	run         func(ctx context.Context, a *app, fs *flag.FlagSet, args []string, stdin io.Reader, stdout, stderr io.Writer) int
	flags       func(fs *flag.FlagSet)
}

// runGroup dispatches `gatehouse GROUP VERB [flags]`.
func runGroup(group, summary string, subs []subcommand) func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: gatehouse %s <command> [flags]\n\n%s\n\nCommands:\n", group, summary)
		for _, s := range subs {
			fmt.Fprintf(w, "  %s\n", s.usage)
		}
		fmt.Fprintf(w, "\nEvery command takes --db FILE (default gatehouse.db) and --secret-file FILE.\n")
		fmt.Fprintf(w, "Exit codes: 0 done, 1 failure, 2 usage or invalid input, 3 already exists, 4 not found.\n")
	}
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			usage(stderr)
			if len(args) == 0 {
				return exitUsage
			}
			return exitOK
		}
		for _, sub := range subs {
			if sub.name != args[0] {
				continue
			}
			fs := flag.NewFlagSet("gatehouse "+group+" "+sub.name, flag.ContinueOnError)
			fs.SetOutput(stderr)
			var sc storeConfig
			sc.bind(fs)
			if sub.flags != nil {
				sub.flags(fs)
			}
			fs.Usage = func() {
				fmt.Fprintf(stderr, "Usage: gatehouse %s %s\n\nFlags:\n", group, sub.usage)
				fs.PrintDefaults()
			}
			if code := parseFlags(fs, args[1:], os.Getenv); code >= 0 {
				return code
			}
			if err := requireExistingDB(sc.DB); err != nil {
				fmt.Fprintf(stderr, "gatehouse %s: %v\n", strings.TrimSuffix(group+" "+sub.name, " "+group), err)
				return exitFailure
			}
			log := cliLogger(stderr, sc)
			a, err := openApp(ctx, sc, auth.Config{Logger: log}, os.Getenv)
			if err != nil {
				fmt.Fprintf(stderr, "gatehouse %s %s: %v\n", group, sub.name, err)
				return exitFailure
			}
			defer a.close()
			return sub.run(ctx, a, fs, fs.Args(), stdin, stdout, stderr)
		}
		fmt.Fprintf(stderr, "gatehouse %s: unknown command %q\n\n", group, args[0])
		usage(stderr)
		return exitUsage
	}
}

// requireExistingDB refuses to run an operator command on a SQLite file
// that does not exist: opening it would create an empty database and a new
// master secret there, and the command would report on that instead of the
// server's (run from the wrong directory, say).
func requireExistingDB(db string) error {
	if postgres.IsURL(db) {
		return nil
	}
	if _, err := os.Stat(db); err != nil {
		abs, _ := filepath.Abs(db)
		return fmt.Errorf("no database at %s; run from the server's directory or point at it with --db PATH (or GATEHOUSE_DB)", abs)
	}
	return nil
}

// fail prints err and maps it to an exit code.
func fail(stderr io.Writer, what string, err error) int {
	fmt.Fprintf(stderr, "gatehouse %s: %v\n", what, err)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return exitNotFound
	case errors.Is(err, auth.ErrUsernameTaken), errors.Is(err, auth.ErrLastAdmin):
		return exitConflict
	case errors.Is(err, auth.ErrInvalidRequest), errors.Is(err, auth.ErrWeakPassword):
		return exitUsage
	}
	return exitFailure
}

// cliMeta marks events caused by the CLI.
var cliMeta = auth.Meta{IP: "", UserAgent: "gatehouse-cli"}

func stringFlag(name, usage string) (func(*flag.FlagSet), func() string) {
	var v string
	return func(fs *flag.FlagSet) { fs.StringVar(&v, name, "", usage) }, func() string { return v }
}

func userCommands() []subcommand {
	bindName, name := stringFlag("username", "account name (required)")
	var role string
	var limit int
	var permsSet bool
	var permsList []string
	return []subcommand{
		{
			name: "create", usage: "create --username NAME [--role user|admin]   (password: first line of stdin)",
			flags: func(fs *flag.FlagSet) { bindName(fs); fs.StringVar(&role, "role", "user", "user or admin") },
			run: func(ctx context.Context, a *app, fs *flag.FlagSet, _ []string, stdin io.Reader, stdout, stderr io.Writer) int {
				if name() == "" {
					fmt.Fprintln(stderr, "gatehouse user create: --username is required")
					return exitUsage
				}
				pw, err := readPassword(stdin, stderr)
				if err != nil {
					fmt.Fprintf(stderr, "gatehouse user create: %v\n", err)
					return exitUsage
				}
				u, err := a.svc.CreateUser(ctx, name(), pw, role)
				if err != nil {
					return fail(stderr, "user create", err)
				}
				fmt.Fprintf(stdout, "created %s %s (id %s)\n", u.Role, u.Username, u.ID)
				return exitOK
			},
		},
		{
			name: "list", usage: "list [--limit N]",
			flags: func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 0, "at most N users (default: all)") },
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tPERMISSIONS\tDISABLED\tCREATED")
				after, n := "", 0
				for {
					users, next, err := a.svc.ListUsers(ctx, after, "", 500)
					if err != nil {
						return fail(stderr, "user list", err)
					}
					for _, u := range users {
						if limit > 0 && n == limit {
							return flushOK(tw)
						}
						fmt.Fprintf(tw, "%s\t%q\t%s\t%s\t%v\t%s\n", u.ID, u.Username, u.Role, strings.Join(u.Permissions, ","), u.Disabled, u.CreatedAt.Format(time.RFC3339))
						n++
					}
					if next == "" {
						return flushOK(tw)
					}
					after = next
				}
			},
		},
		{
			name: "disable", usage: "disable --username NAME   (revokes every session at once)",
			flags: bindName,
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				t := true
				return updateUser(ctx, a, name(), nil, &t, "disabled", stdout, stderr)
			},
		},
		{
			name: "enable", usage: "enable --username NAME   (old sessions stay revoked)",
			flags: bindName,
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				f := false
				return updateUser(ctx, a, name(), nil, &f, "enabled", stdout, stderr)
			},
		},
		{
			name: "set-role", usage: "set-role --username NAME --role user|admin   (outstanding access tokens stop working)",
			flags: func(fs *flag.FlagSet) { bindName(fs); fs.StringVar(&role, "role", "", "user or admin (required)") },
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if role == "" {
					fmt.Fprintln(stderr, "gatehouse user set-role: --role is required")
					return exitUsage
				}
				return updateUser(ctx, a, name(), &role, nil, "role set to "+role, stdout, stderr)
			},
		},
		{
			name: "set-permissions", usage: "set-permissions --username NAME --permissions P1,P2   (\"\" clears; outstanding access tokens stop working)",
			flags: func(fs *flag.FlagSet) {
				bindName(fs)
				fs.Func("permissions", "comma-separated permissions, each 1-64 of a-z 0-9 : . _ - (required; \"\" for none)", func(v string) error {
					permsSet = true
					permsList = splitList(v)
					return nil
				})
			},
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if !permsSet {
					fmt.Fprintln(stderr, "gatehouse user set-permissions: --permissions is required (\"\" for none)")
					return exitUsage
				}
				perms := append([]string{}, permsList...)
				return changeUser(ctx, a, name(), auth.UserChange{Permissions: &perms},
					"permissions set to ["+strings.Join(perms, " ")+"]", stdout, stderr)
			},
		},
		{
			name: "set-password", usage: "set-password --username NAME   (password: first line of stdin; revokes every session)",
			flags: bindName,
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, stdin io.Reader, stdout, stderr io.Writer) int {
				if name() == "" {
					fmt.Fprintln(stderr, "gatehouse user set-password: --username is required")
					return exitUsage
				}
				pw, err := readPassword(stdin, stderr)
				if err != nil {
					fmt.Fprintf(stderr, "gatehouse user set-password: %v\n", err)
					return exitUsage
				}
				return changeUser(ctx, a, name(), auth.UserChange{Password: &pw}, "password reset, every session revoked", stdout, stderr)
			},
		},
		{
			name: "delete", usage: "delete --username NAME   (every session and token dead at once; the name is free again)",
			flags: bindName,
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if name() == "" {
					fmt.Fprintln(stderr, "gatehouse user delete: --username is required")
					return exitUsage
				}
				u, err := a.svc.FindUser(ctx, name())
				if err != nil {
					return fail(stderr, "user delete", fmt.Errorf("user %q: %w", name(), err))
				}
				if err := a.svc.DeleteUser(ctx, u.ID, cliMeta); err != nil {
					return fail(stderr, "user delete", err)
				}
				fmt.Fprintf(stdout, "%s: deleted (id %s)\n", u.Username, u.ID)
				return exitOK
			},
		},
	}
}

func flushOK(tw *tabwriter.Writer) int {
	if err := tw.Flush(); err != nil {
		return exitFailure
	}
	return exitOK
}

func updateUser(ctx context.Context, a *app, username string, role *string, disabled *bool, done string, stdout, stderr io.Writer) int {
	return changeUser(ctx, a, username, auth.UserChange{Role: role, Disabled: disabled}, done, stdout, stderr)
}

// changeUser applies c to the named account, as the admin API does (the
// CLI is the operator's own tool: no step-up).
func changeUser(ctx context.Context, a *app, username string, c auth.UserChange, done string, stdout, stderr io.Writer) int {
	if username == "" {
		fmt.Fprintln(stderr, "gatehouse user: --username is required")
		return exitUsage
	}
	u, err := a.svc.FindUser(ctx, username)
	if err != nil {
		return fail(stderr, "user", fmt.Errorf("user %q: %w", username, err))
	}
	if _, err := a.svc.ChangeUser(ctx, u.ID, c, cliMeta); err != nil {
		return fail(stderr, "user", err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", u.Username, done)
	return exitOK
}

// readPassword reads the first line of stdin (never argv: it would show in
// ps and shell history).
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (input is echoed; pipe it in to avoid that): ")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on stdin")
	}
	return pw, nil
}

func sessionCommands() []subcommand {
	bindUser, user := stringFlag("user", "account name")
	var session string
	var all bool
	return []subcommand{
		{
			name: "list", usage: "list --user NAME",
			flags: bindUser,
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if user() == "" {
					fmt.Fprintln(stderr, "gatehouse sessions list: --user is required")
					return exitUsage
				}
				u, err := a.svc.FindUser(ctx, user())
				if err != nil {
					return fail(stderr, "sessions list", fmt.Errorf("user %q: %w", user(), err))
				}
				list, err := a.svc.UserSessions(ctx, u.ID)
				if err != nil {
					return fail(stderr, "sessions list", err)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCREATED\tLAST USED\tEXPIRES\tIP\tUSER AGENT")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%q\n", s.ID, s.CreatedAt.Format(time.RFC3339),
						s.LastUsedAt.Format(time.RFC3339), minTime(s.IdleExpiresAt, s.ExpiresAt).Format(time.RFC3339), s.IP, s.UserAgent)
				}
				return flushOK(tw)
			},
		},
		{
			name: "revoke", usage: "revoke --user NAME | --session ID | --all   (--all: every session and access token, emergency)",
			flags: func(fs *flag.FlagSet) {
				bindUser(fs)
				fs.StringVar(&session, "session", "", "session id")
				fs.BoolVar(&all, "all", false, "revoke every session and access token of every user")
			},
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				chosen := 0
				for _, set := range []bool{user() != "", session != "", all} {
					if set {
						chosen++
					}
				}
				if chosen != 1 {
					fmt.Fprintln(stderr, "gatehouse sessions revoke: give exactly one of --user, --session, --all")
					return exitUsage
				}
				switch {
				case all:
					n, err := a.svc.RevokeAll(ctx, cliMeta)
					if err != nil {
						return fail(stderr, "sessions revoke", err)
					}
					fmt.Fprintf(stdout, "revoked every access token and %d sessions\n", n)
				case session != "":
					if err := a.svc.RevokeSession(ctx, session, cliMeta); err != nil {
						return fail(stderr, "sessions revoke", fmt.Errorf("session %q: %w", session, err))
					}
					fmt.Fprintf(stdout, "revoked session %s\n", session)
				default:
					u, err := a.svc.FindUser(ctx, user())
					if err != nil {
						return fail(stderr, "sessions revoke", fmt.Errorf("user %q: %w", user(), err))
					}
					n, err := a.svc.RevokeUserSessions(ctx, u.ID, cliMeta)
					if err != nil {
						return fail(stderr, "sessions revoke", err)
					}
					fmt.Fprintf(stdout, "revoked %d sessions of %s\n", n, u.Username)
				}
				return exitOK
			},
		},
	}
}

func keyCommands() []subcommand {
	return []subcommand{
		{
			name: "list", usage: "list",
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				keys, err := a.keys.List(ctx)
				if err != nil {
					return fail(stderr, "keys list", err)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE")
				for _, k := range keys {
					state := "active (signing)"
					if !k.RetiredAt.IsZero() {
						if until := k.RetiredAt.Add(a.keys.Grace()); time.Now().Before(until) {
							state = "retired, verifying until " + until.UTC().Format(time.RFC3339)
						} else {
							state = "retired"
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.UTC().Format(time.RFC3339), state)
				}
				return flushOK(tw)
			},
		},
		{
			name: "rotate", usage: "rotate   (new signing key; the old one stays in the JWKS until its tokens expire)",
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if err := a.keys.Rotate(ctx, time.Now()); err != nil {
					return fail(stderr, "keys rotate", err)
				}
				fmt.Fprintf(stdout, "new signing key %s; a running server switches within a minute\n", a.keys.Set().JWKS().Keys[0].KeyID)
				return exitOK
			},
		},
	}
}

func resourceKeyCommands() []subcommand {
	var name, id string
	return []subcommand{
		{
			name: "add", usage: "add --name NAME   (prints the key once; only its hash is stored)",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "what the key is for (required)") },
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if name == "" {
					fmt.Fprintln(stderr, "gatehouse keys resource add: --name is required")
					return exitUsage
				}
				key, rk, err := a.svc.AddResourceKey(ctx, name)
				if err != nil {
					return fail(stderr, "keys resource add", err)
				}
				fmt.Fprintf(stderr, "resource key %s (%s) created; store it now, it cannot be shown again\n", rk.ID, rk.Name)
				fmt.Fprintln(stdout, key)
				return exitOK
			},
		},
		{
			name: "list", usage: "list",
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				keys, err := a.svc.ListResourceKeys(ctx)
				if err != nil {
					return fail(stderr, "keys resource list", err)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tCREATED")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.UTC().Format(time.RFC3339))
				}
				return flushOK(tw)
			},
		},
		{
			name: "remove", usage: "remove --id ID",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "key id from `keys resource list` (required)") },
			run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
				if id == "" {
					fmt.Fprintln(stderr, "gatehouse keys resource remove: --id is required")
					return exitUsage
				}
				if err := a.svc.RemoveResourceKey(ctx, id); err != nil {
					return fail(stderr, "keys resource remove", fmt.Errorf("key %q: %w", id, err))
				}
				fmt.Fprintf(stdout, "removed resource key %s\n", id)
				return exitOK
			},
		},
	}
}

// runKeys is `gatehouse keys`: signing keys, and `keys resource …` for
// resource-server keys.
func runKeys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "resource" {
		return runGroup("keys resource", "Manages resource-server keys (revocation feed, introspection, revocation).",
			resourceKeyCommands())(ctx, args[1:], stdin, stdout, stderr)
	}
	return runGroup("keys", "Manages access-token signing keys; `gatehouse keys resource --help` for resource-server keys.",
		keyCommands())(ctx, args, stdin, stdout, stderr)
}

func runEvents(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var user, typ string
	var limit int
	list := subcommand{
		name: "events", usage: "[--user NAME] [--type TYPE] [--limit N]",
		run: func(ctx context.Context, a *app, _ *flag.FlagSet, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
			q := auth.EventQuery{Type: typ, Limit: limit}
			if user != "" {
				u, err := a.svc.FindUser(ctx, user)
				if err != nil {
					return fail(stderr, "events", fmt.Errorf("user %q: %w", user, err))
				}
				q.UserID = u.ID
			}
			evs, _, err := a.svc.Events(ctx, q)
			if err != nil {
				return fail(stderr, "events", err)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tTYPE\tUSER\tUSER ID\tSESSION\tIP\tDETAIL")
			names := map[string]string{} // user id -> name, looked up once
			for _, e := range evs {
				name, ok := names[e.UserID]
				if !ok && e.UserID != "" {
					name = "(deleted)"
					if u, err := a.svc.GetUser(ctx, e.UserID); err == nil {
						name = strconv.Quote(u.Username) // quoted: names may hold any script
					}
					names[e.UserID] = name
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%q\n", e.At.Format(time.RFC3339), e.Type, name, e.UserID, e.SessionID, e.IP, e.Detail)
			}
			return flushOK(tw)
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&user, "user", "", "only this account's events")
			fs.StringVar(&typ, "type", "", "only this event type (login_failed, refresh_token_reused, …)")
			fs.IntVar(&limit, "limit", 50, "newest N events (at most 500)")
		},
	}
	// events has no verbs: run it as the group's only command.
	return runGroup("events", "Lists security events, newest first.", []subcommand{list})(ctx, append([]string{"events"}, args...), stdin, stdout, stderr)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
