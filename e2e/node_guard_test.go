package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeGuard runs clients/node's tests (node --test) against a real
// Gatehouse: 4-second access tokens, a resource key, an admin account.
func TestNodeGuard(t *testing.T) {
	node, err := exec.LookPath("node")
	dir := filepath.Join("..", "clients", "node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "socket.io"))
	}
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("node and clients/node/node_modules are required (cd clients/node && npm ci): %v", err)
		}
		t.Skip("node or clients/node/node_modules missing (cd clients/node && npm ci): skipped")
	}
	gh := startGatehouse(t, reserve(t), ghOptions{accessTTL: 4 * time.Second})
	if _, err := gh.svc.CreateUser(context.Background(), "root", "pw-root-long", "admin"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // never hang CI
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-timeout=60000", "test/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GH_URL="+gh.URL, "GH_RESOURCE_KEY="+resourceKey, "GH_ADMIN=root", "GH_ADMIN_PASSWORD=pw-root-long")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test clients/node: %v\n%s", err, out)
	}
	t.Logf("%s", lastLines(string(out), 12))
}
