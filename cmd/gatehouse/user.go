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

func userCommands() []command {
	bindName, name := stringFlag("username", "account name (required)")
	var role string
	var limit int
	var permsSet bool
	var permsList []string
	return []command{
		{
			name: "create", usage: "--username NAME [--role user|admin]   (password: first line of stdin)", summary: "create an account", db: true, required: []string{"username"},
			flags: func(fs *flag.FlagSet) { bindName(fs); fs.StringVar(&role, "role", "user", "user or admin") },
			run: func(ctx context.Context, in *invocation) int {
				pw, err := readPassword(in.stdin, in.stderr)
				if err != nil {
					fmt.Fprintf(in.stderr, "gatehouse user create: %v\n", err)
					return exitUsage
				}
				u, err := in.app.svc.CreateUser(ctx, name(), pw, role)
				if err != nil {
					return fail(in.stderr, "user create", err)
				}
				fmt.Fprintf(in.stdout, "created %s %s (id %s)\n", u.Role, u.Username, u.ID)
				return exitOK
			},
		},
		{
			name: "list", usage: "[--limit N]", summary: "list the accounts", db: true,
			flags: func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 0, "at most N users (default: all)") },
			run: func(ctx context.Context, in *invocation) int {
				tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tPERMISSIONS\tDISABLED\tCREATED")
				after, n := "", 0
				for {
					users, next, err := in.app.svc.ListUsers(ctx, after, "", 500)
					if err != nil {
						return fail(in.stderr, "user list", err)
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
			name: "disable", usage: "--username NAME", summary: "disable an account: every session revoked at once", db: true, required: []string{"username"},
			flags: bindName,
			run: func(ctx context.Context, in *invocation) int {
				t := true
				return updateUser(ctx, in.app, name(), nil, &t, "disabled", in.stdout, in.stderr)
			},
		},
		{
			name: "enable", usage: "--username NAME", summary: "enable an account (its old sessions stay revoked)", db: true, required: []string{"username"},
			flags: bindName,
			run: func(ctx context.Context, in *invocation) int {
				f := false
				return updateUser(ctx, in.app, name(), nil, &f, "enabled", in.stdout, in.stderr)
			},
		},
		{
			name: "set-role", usage: "--username NAME --role user|admin", summary: "set the role (outstanding access tokens stop working)", db: true, required: []string{"username", "role"},
			flags: func(fs *flag.FlagSet) { bindName(fs); fs.StringVar(&role, "role", "", "user or admin (required)") },
			run: func(ctx context.Context, in *invocation) int {
				return updateUser(ctx, in.app, name(), &role, nil, "role set to "+role, in.stdout, in.stderr)
			},
		},
		{
			name: "set-permissions", usage: "--username NAME --permissions P1,P2   (\"\" clears)", summary: "set the permissions (outstanding access tokens stop working)", db: true, required: []string{"username"},
			flags: func(fs *flag.FlagSet) {
				bindName(fs)
				fs.Func("permissions", "comma-separated permissions, each 1-64 of a-z 0-9 : . _ - (required; \"\" for none)", func(v string) error {
					permsSet = true
					permsList = splitList(v)
					return nil
				})
			},
			run: func(ctx context.Context, in *invocation) int {
				if !permsSet {
					fmt.Fprintln(in.stderr, "gatehouse user set-permissions: --permissions is required (\"\" for none)")
					return exitUsage
				}
				perms := append([]string{}, permsList...)
				return changeUser(ctx, in.app, name(), auth.UserChange{Permissions: &perms},
					"permissions set to ["+strings.Join(perms, " ")+"]", in.stdout, in.stderr)
			},
		},
		{
			name: "set-password", usage: "--username NAME   (password: first line of stdin)", summary: "reset the password: every session revoked", db: true, required: []string{"username"},
			flags: bindName,
			run: func(ctx context.Context, in *invocation) int {
				pw, err := readPassword(in.stdin, in.stderr)
				if err != nil {
					fmt.Fprintf(in.stderr, "gatehouse user set-password: %v\n", err)
					return exitUsage
				}
				return changeUser(ctx, in.app, name(), auth.UserChange{Password: &pw}, "password reset, every session revoked", in.stdout, in.stderr)
			},
		},
		{
			name: "mfa-reset", usage: "--username NAME", summary: "remove every second factor and recovery code: every session revoked", db: true, required: []string{"username"},
			flags: bindName,
			run: func(ctx context.Context, in *invocation) int {
				u, err := in.app.svc.FindUser(ctx, name())
				if err != nil {
					return fail(in.stderr, "user mfa-reset", fmt.Errorf("user %q: %w", name(), err))
				}
				if err := in.app.svc.ResetMFA(ctx, u.ID, cliMeta); err != nil {
					return fail(in.stderr, "user mfa-reset", err)
				}
				fmt.Fprintf(in.stdout, "%s: second factors removed, every session revoked\n", u.Username)
				return exitOK
			},
		},
		{
			name: "delete", usage: "--username NAME", summary: "delete an account: every session and token dead at once, the name free again", db: true, required: []string{"username"},
			flags: bindName,
			run: func(ctx context.Context, in *invocation) int {
				u, err := in.app.svc.FindUser(ctx, name())
				if err != nil {
					return fail(in.stderr, "user delete", fmt.Errorf("user %q: %w", name(), err))
				}
				if err := in.app.svc.DeleteUser(ctx, u.ID, cliMeta); err != nil {
					return fail(in.stderr, "user delete", err)
				}
				fmt.Fprintf(in.stdout, "%s: deleted (id %s)\n", u.Username, u.ID)
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

func sessionCommands() []command {
	bindUser, user := stringFlag("user", "account name")
	var session string
	var all bool
	return []command{
		{
			name: "list", usage: "--user NAME", summary: "list an account's active sessions", db: true, required: []string{"user"},
			flags: bindUser,
			run: func(ctx context.Context, in *invocation) int {
				u, err := in.app.svc.FindUser(ctx, user())
				if err != nil {
					return fail(in.stderr, "sessions list", fmt.Errorf("user %q: %w", user(), err))
				}
				list, err := in.app.svc.UserSessions(ctx, u.ID)
				if err != nil {
					return fail(in.stderr, "sessions list", err)
				}
				tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCREATED\tLAST USED\tEXPIRES\tIP\tUSER AGENT")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%q\n", s.ID, s.CreatedAt.Format(time.RFC3339),
						s.LastUsedAt.Format(time.RFC3339), minTime(s.IdleExpiresAt, s.ExpiresAt).Format(time.RFC3339), s.IP, s.UserAgent)
				}
				return flushOK(tw)
			},
		},
		{
			name: "revoke", usage: "--user NAME | --session ID | --all", summary: "revoke an account's sessions, one session, or (--all, the emergency switch) every session and access token", db: true,
			flags: func(fs *flag.FlagSet) {
				bindUser(fs)
				fs.StringVar(&session, "session", "", "session id")
				fs.BoolVar(&all, "all", false, "revoke every session and access token of every user")
			},
			run: func(ctx context.Context, in *invocation) int {
				chosen := 0
				for _, set := range []bool{user() != "", session != "", all} {
					if set {
						chosen++
					}
				}
				if chosen != 1 {
					fmt.Fprintln(in.stderr, "gatehouse sessions revoke: give exactly one of --user, --session, --all")
					return exitUsage
				}
				switch {
				case all:
					n, err := in.app.svc.RevokeAll(ctx, cliMeta)
					if err != nil {
						return fail(in.stderr, "sessions revoke", err)
					}
					fmt.Fprintf(in.stdout, "revoked every access token and %s\n", plural(n, "session"))
				case session != "":
					if err := in.app.svc.RevokeSession(ctx, session, cliMeta); err != nil {
						return fail(in.stderr, "sessions revoke", fmt.Errorf("session %q: %w", session, err))
					}
					fmt.Fprintf(in.stdout, "revoked session %s\n", session)
				default:
					u, err := in.app.svc.FindUser(ctx, user())
					if err != nil {
						return fail(in.stderr, "sessions revoke", fmt.Errorf("user %q: %w", user(), err))
					}
					n, err := in.app.svc.RevokeUserSessions(ctx, u.ID, cliMeta)
					if err != nil {
						return fail(in.stderr, "sessions revoke", err)
					}
					fmt.Fprintf(in.stdout, "revoked %s of %s\n", plural(n, "session"), u.Username)
				}
				return exitOK
			},
		},
	}
}

func keyCommands() []command {
	var accessTTL time.Duration
	return []command{
		{
			name: "list", usage: "[--access-ttl D]", summary: "list the signing keys and their state", db: true,
			flags: func(fs *flag.FlagSet) {
				fs.DurationVar(&accessTTL, "access-ttl", auth.DefaultAccessTTL, "the running server's --access-ttl: a retired key verifies for it plus two minutes")
			},
			run: func(ctx context.Context, in *invocation) int {
				keys, err := in.app.keys.List(ctx)
				if err != nil {
					return fail(in.stderr, "keys list", err)
				}
				tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE")
				for _, k := range keys {
					state := "active (signing)"
					if !k.RetiredAt.IsZero() {
						// The grace is the server's --access-ttl plus two
						// minutes (--access-ttl, or GATEHOUSE_ACCESS_TTL as
						// the server has it).
						if until := k.RetiredAt.Add(keyGrace(accessTTL)); time.Now().Before(until) {
							state = fmt.Sprintf("retired %s, verifying until %s (for --access-ttl %v)", k.RetiredAt.UTC().Format(time.RFC3339),
								until.UTC().Format(time.RFC3339), accessTTL)
						} else {
							state = "retired " + k.RetiredAt.UTC().Format(time.RFC3339)
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.UTC().Format(time.RFC3339), state)
				}
				return flushOK(tw)
			},
		},
		{
			name: "rotate", usage: "", summary: "rotate the signing key (the old one stays in the JWKS until its tokens expire)", db: true,
			run: func(ctx context.Context, in *invocation) int {
				if err := in.app.keys.Rotate(ctx, time.Now()); err != nil {
					return fail(in.stderr, "keys rotate", err)
				}
				fmt.Fprintf(in.stdout, "new signing key %s; a running server switches within a minute\n", in.app.keys.Set().JWKS().Keys[0].KeyID)
				return exitOK
			},
		},
	}
}

func resourceKeyCommands() []command {
	var name, id string
	return []command{
		{
			name: "add", usage: "--name NAME", summary: "add a resource-server key (printed once; only its hash is stored)", db: true, required: []string{"name"},
			flags: func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "what the key is for (required)") },
			run: func(ctx context.Context, in *invocation) int {
				key, rk, err := in.app.svc.AddResourceKey(ctx, name)
				if err != nil {
					return fail(in.stderr, "keys resource add", err)
				}
				fmt.Fprintf(in.stderr, "resource key %s (%s) created; store it now, it cannot be shown again\n", rk.ID, rk.Name)
				fmt.Fprintln(in.stdout, key)
				return exitOK
			},
		},
		{
			name: "list", usage: "", summary: "list the resource-server keys", db: true,
			run: func(ctx context.Context, in *invocation) int {
				keys, err := in.app.svc.ListResourceKeys(ctx)
				if err != nil {
					return fail(in.stderr, "keys resource list", err)
				}
				tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tCREATED")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.UTC().Format(time.RFC3339))
				}
				return flushOK(tw)
			},
		},
		{
			name: "remove", usage: "--id ID", summary: "remove a resource-server key", db: true, required: []string{"id"},
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "the key's id (gatehouse keys resource list)") },
			run: func(ctx context.Context, in *invocation) int {
				if err := in.app.svc.RemoveResourceKey(ctx, id); err != nil {
					return fail(in.stderr, "keys resource remove", fmt.Errorf("key %q: %w", id, err))
				}
				fmt.Fprintf(in.stdout, "removed resource key %s\n", id)
				return exitOK
			},
		},
	}
}

// keysCommand is `gatehouse keys`: signing keys, and `keys resource …`
// for resource-server keys.
func keysCommand() command {
	return command{name: "keys", summary: "signing keys (list, rotate) and resource-server keys (resource add|list|remove)",
		subs: append(keyCommands(), command{name: "resource",
			summary: "resource-server keys: the credential of the revocation feed, introspection and revocation",
			subs:    resourceKeyCommands()})}
}

// eventsCommand lists security events; it has no verbs.
func eventsCommand() command {
	var user, typ string
	var limit int
	return command{
		name: "events", usage: "[--user NAME] [--type TYPE] [--limit N]", summary: "list security events, newest first", db: true,
		run: func(ctx context.Context, in *invocation) int {
			q := auth.EventQuery{Type: typ, Limit: limit}
			if user != "" {
				u, err := in.app.svc.FindUser(ctx, user)
				if err != nil {
					return fail(in.stderr, "events", fmt.Errorf("user %q: %w", user, err))
				}
				q.UserID = u.ID
			}
			evs, _, err := in.app.svc.Events(ctx, q)
			if err != nil {
				return fail(in.stderr, "events", err)
			}
			tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tTYPE\tUSER\tUSER ID\tSESSION\tIP\tDETAIL")
			names := map[string]string{} // user id -> name, looked up once
			for _, e := range evs {
				name, ok := names[e.UserID]
				if !ok && e.UserID != "" {
					name = "(deleted)"
					if u, err := in.app.svc.GetUser(ctx, e.UserID); err == nil {
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
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// clientsCommand is `gatehouse clients`: registered OAuth clients.
func clientsCommand() command {
	var name, kind, audience, role, perms, id string
	return command{name: "clients", summary: "registered clients: resource servers and service clients (add, list, remove)",
		subs: []command{
			{
				name: "add", usage: "--name N --kind resource|service [--audience URI] [--role R] [--permissions a,b]",
				summary: "register a client (its secret is printed once; only its hash is stored)", db: true, required: []string{"name", "kind"},
				flags: func(fs *flag.FlagSet) {
					fs.StringVar(&name, "name", "", "what the client is (required)")
					fs.StringVar(&kind, "kind", "", "resource (a resource server: feed, introspection, revocation) or service (client_credentials tokens)")
					fs.StringVar(&audience, "audience", "", "a resource server's identifier (absolute URI): tokens may be narrowed to it (RFC 8707 resource)")
					fs.StringVar(&role, "role", "", "a service client's role: user (default) or admin")
					fs.StringVar(&perms, "permissions", "", "a service client's comma-separated permissions")
				},
				run: func(ctx context.Context, in *invocation) int {
					secret, c, err := in.app.svc.AddClient(ctx, auth.ClientSpec{Name: name, Kind: kind, Audience: audience, Role: role, Permissions: splitList(perms)})
					if err != nil {
						return fail(in.stderr, "clients add", err)
					}
					fmt.Fprintf(in.stderr, "%s client %q registered; store the secret now, it cannot be shown again\n", c.Kind, c.Name)
					fmt.Fprintf(in.stdout, "client_id: %s\nclient_secret: %s\n", c.ID, secret)
					return exitOK
				},
			},
			{
				name: "list", usage: "", summary: "list the clients (no secrets)", db: true,
				run: func(ctx context.Context, in *invocation) int {
					list, err := in.app.svc.ListClients(ctx)
					if err != nil {
						return fail(in.stderr, "clients list", err)
					}
					tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "CLIENT_ID\tNAME\tKIND\tAUDIENCE\tROLE\tPERMISSIONS\tCREATED")
					for _, c := range list {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Kind, dash(c.Audience), dash(c.Role),
							dash(strings.Join(c.Permissions, ",")), c.CreatedAt.UTC().Format(time.RFC3339))
					}
					return flushOK(tw)
				},
			},
			{
				name: "remove", usage: "--id ID", summary: "remove a client: its secret stops working and a service client's tokens are refused at once", db: true, required: []string{"id"},
				flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "the client_id (gatehouse clients list)") },
				run: func(ctx context.Context, in *invocation) int {
					if err := in.app.svc.RemoveClient(ctx, id); err != nil {
						return fail(in.stderr, "clients remove", fmt.Errorf("client %q: %w", id, err))
					}
					fmt.Fprintf(in.stdout, "removed client %s\n", id)
					return exitOK
				},
			},
		}}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural is "1 session", "2 sessions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
