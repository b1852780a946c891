package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	digest "github.com/opencontainers/go-digest"
)

// offlineImages answers buildkit's base-image lookups without a registry
// (none is reachable in CI): an empty linux/amd64 config, so the lint
// checks the Dockerfile itself.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{}})
	return ref, digest.FromBytes(cfg), cfg, nil
}

// TestDockerfile lints the Dockerfile with buildkit's own checks (what
// `docker build --check` runs), checks what the image promises (static
// base, non-root, /data volume, HEALTHCHECK through the binary), and runs
// the build stage's `go build` line here: the binary must be static and
// work. No Docker daemon is needed, so this runs in CI.
func TestDockerfile(t *testing.T) {
	dt, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := llb.Scratch()
	def, err := src.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := llb.NewSourceMap(&src, "Dockerfile", "Dockerfile", dt)
	sm.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{SourceMap: sm, MetaResolver: offlineImages{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != nil {
		t.Fatalf("Dockerfile does not build: %s", res.Error.Message)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile lint %s: %s", w.RuleName, w.Detail)
	}

	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil || len(stages) < 2 {
		t.Fatalf("stages: %v (%d)", err, len(stages))
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("runtime image %s: want a static base with no shell", final.BaseName)
	}
	var user, health, goBuild string
	var volumes, ports []string
	env := map[string]string{}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.HealthCheckCommand:
			health = strings.Join(c.Health.Test, " ")
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("runtime USER %q: want a non-root user", user)
	}
	if !slices.Contains(volumes, "/data") || !strings.HasPrefix(env["GATEHOUSE_DB"], "/data/") {
		t.Errorf("volumes %v, GATEHOUSE_DB %q: the database must live in the /data volume", volumes, env["GATEHOUSE_DB"])
	}
	if !slices.Contains(ports, "8080") || !strings.HasSuffix(env["GATEHOUSE_ADDR"], ":8080") {
		t.Errorf("EXPOSE %v, GATEHOUSE_ADDR %q", ports, env["GATEHOUSE_ADDR"])
	}
	if !strings.HasPrefix(health, "CMD ") || !strings.HasSuffix(health, "gatehouse healthcheck") {
		t.Errorf("HEALTHCHECK %q: want the exec form running gatehouse healthcheck", health)
	}
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			goBuild = strings.Join(r.CmdLine, " ")
		}
	}
	if !strings.Contains(goBuild, "CGO_ENABLED=0") || !strings.Contains(goBuild, "-o /out/gatehouse") {
		t.Fatalf("build stage go build line %q", goBuild)
	}

	// The same command, writing here instead of /out.
	out := filepath.Join(t.TempDir(), "gatehouse")
	cmd := exec.Command("sh", "-c", strings.Replace(goBuild, "-o /out/gatehouse", "-o "+out, 1))
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", goBuild, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatal("the image's binary is dynamically linked: it cannot run on a static base")
		}
	}
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "gatehouse ") {
		t.Fatalf("static binary version: %v %s", err, b)
	}
	// The HEALTHCHECK as the image runs it: the environment says where.
	p := start(t, t.TempDir(), nil)
	hc := exec.Command(out, "healthcheck")
	hc.Env = append(os.Environ(), "GATEHOUSE_ADDR="+strings.TrimPrefix(p.base, "http://"))
	if b, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck against a ready server: %v %s", err, b)
	}
}

// TestHealthcheck: 0 only for a ready server; 1 when nothing answers or
// the store is gone; 2 for bad flags.
func TestHealthcheck(t *testing.T) {
	p := start(t, t.TempDir(), nil)
	addr := strings.TrimPrefix(p.base, "http://")
	if code, out := runCLI(t, "", nil, "healthcheck", "--addr", addr); code != 0 || !strings.Contains(out, "/readyz") {
		t.Fatalf("ready server: %d %s", code, out)
	}
	_, port, _ := strings.Cut(addr, ":")
	if code, out := runCLI(t, "", nil, "healthcheck", "--addr", "0.0.0.0:"+port); code != 0 {
		t.Fatalf("0.0.0.0 is read as loopback: %d %s", code, out)
	}
	if code, out := runCLI(t, "", nil, "healthcheck", "--url", p.base+"/no-such-page"); code != 1 {
		t.Fatalf("a 404 is not healthy: %d %s", code, out)
	}
	if code, out := runCLI(t, "", nil, "healthcheck", "--addr", freeAddr(t), "--timeout", "1s"); code != 1 {
		t.Fatalf("nothing listening: %d %s", code, out)
	}
	for _, bad := range [][]string{{"--addr", "nonsense"}, {"--url", "ftp://x/readyz"}, {"--timeout", "-1s"}, {"--bogus"}} {
		if code, out := runCLI(t, "", nil, append([]string{"healthcheck"}, bad...)...); code != 2 {
			t.Fatalf("%v: %d %s", bad, code, out)
		}
	}
}

// TestSystemdUnit checks deploy/gatehouse.service with systemd's own tools:
// `verify` (every key known, the binary runnable) and the offline
// `security` review, which must rate the sandbox "OK" (exposure below 2).
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_SYSTEMD") == "1" {
			t.Fatal("systemd-analyze is required (GATEHOUSE_REQUIRE_SYSTEMD=1)")
		}
		t.Skip("systemd-analyze not installed; skipping the unit checks")
	}
	unit, err := os.ReadFile("../../deploy/gatehouse.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/gatehouse serve\n")) {
		t.Fatal("ExecStart is not /usr/local/bin/gatehouse serve")
	}
	// verify wants the binary to exist: point it at the test binary.
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/gatehouse"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	verify := exec.Command("systemd-analyze", "verify", "--man=no", path)
	verify.Stderr = &stderr
	if err := verify.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
	sec, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, sec)
	}
	if !strings.Contains(string(sec), "Overall exposure level") {
		t.Fatalf("no exposure rating:\n%s", sec)
	}
}

// serve serves the web UI by default; --ui=false (or GATEHOUSE_UI=false)
// turns it off and leaves the API.
func TestUIFlag(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want int
	}{
		{nil, nil, 200},
		{nil, []string{"--ui=false"}, 404},
		{[]string{"GATEHOUSE_UI=false"}, nil, 404},
	} {
		p := start(t, t.TempDir(), c.env, c.args...)
		res, err := http.Get(p.base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%v %v: GET /login = %d, want %d", c.env, c.args, res.StatusCode, c.want)
		}
	}
}
