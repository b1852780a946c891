package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:secret@db:5432/x", "postgres://u:xxxxx@db:5432/x"},
		{"postgresql://u:p%40ss@db/x?sslmode=disable", "postgresql://u:xxxxx@db/x?sslmode=disable"},
		{`failed to connect to "postgres://u:s3cr3t@127.0.0.1:1/x": refused`, `failed to connect to "postgres://u:xxxxx@127.0.0.1:1/x": refused`},
		{"host=db user=u password=secret dbname=x", "host=db user=u password=xxxxx dbname=x"},
		{"host=db password='se cret' x", "host=db password=xxxxx x"},
		{"host=db PassWord=secret", "host=db PassWord=xxxxx"},
		{"postgres://db/x?password=secret&sslmode=require", "postgres://db/x?password=xxxxx&sslmode=require"},
		{"postgres://u@db/x", "postgres://u@db/x"},
		{"gatehouse.db", "gatehouse.db"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorKeepsTheChain(t *testing.T) {
	base := errors.New("unavailable")
	err := Error(fmt.Errorf("dial postgres://u:secret@h/x: %w", base))
	if strings.Contains(err.Error(), "secret") || !errors.Is(err, base) {
		t.Fatalf("Error = %q (is base: %v)", err, errors.Is(err, base))
	}
}

func TestReplaceAttrMasksTheConfiguredSecret(t *testing.T) {
	var buf bytes.Buffer
	secrets := Secrets("postgres://u:hunter2pw@db/x?password=other-pw")
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr(secrets)}))
	log.Info("x", slog.String("db", "postgres://u:hunter2pw@db/x"), slog.Any("err", errors.New("auth failed for hunter2pw")),
		slog.Group("g", slog.String("dsn", "user=u pass:other-pw")))
	if out := buf.String(); strings.Contains(out, "hunter2pw") || strings.Contains(out, "other-pw") {
		t.Fatalf("a secret reached the log: %s", out)
	}
}
