package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "Usage: gatehouse user create --username NAME [--role user|admin] < password-file\n\nSubcommands:\n  create   create an account; the password is read from the first line of stdin, never from arguments")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fs := flag.NewFlagSet("gatehouse user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.bind(fs)
	username := fs.String("username", "", "account name (required)")
	role := fs.String("role", "user", "user or admin")
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: gatehouse user create --username NAME [--role user|admin] [--db FILE]\n\nCreates an account. The password is the first line of stdin, e.g.\n  printf '%s\\n' \"$PASSWORD\" | gatehouse user create --username ann --role admin\nSafe while the server runs on the same database.\nExit codes: 0 created, 1 failure, 2 usage or invalid input, 3 username taken.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args[1:], os.Getenv); code >= 0 {
		return code
	}
	if *username == "" {
		fmt.Fprintln(stderr, "gatehouse user create: --username is required")
		return exitUsage
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (input is echoed; pipe it in to avoid that): ")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "gatehouse user create: read password: %v\n", err)
		return exitFailure
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "gatehouse user create: no password on stdin")
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := openApp(ctx, sc, auth.Config{Logger: log}, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse user create: %v\n", err)
		return exitFailure
	}
	defer a.close()
	u, err := a.svc.CreateUser(ctx, *username, pw, *role)
	switch {
	case errors.Is(err, auth.ErrUsernameTaken):
		fmt.Fprintf(stderr, "gatehouse user create: username %q is taken\n", *username)
		return exitConflict
	case errors.Is(err, auth.ErrInvalidRequest), errors.Is(err, auth.ErrWeakPassword):
		fmt.Fprintf(stderr, "gatehouse user create: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "gatehouse user create: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "created %s %s (id %s)\n", u.Role, u.Username, u.ID)
	return exitOK
}
