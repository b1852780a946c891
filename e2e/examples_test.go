package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
)

// runExample builds examples/name and runs it with args and env; it
// returns when addr accepts connections.
func runExample(t *testing.T, name string, env []string, addr string, args ...string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/"+name).CombinedOutput(); err != nil {
		t.Fatalf("build examples/%s: %v\n%s", name, err, out)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("examples/%s did not start: %s", name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// examples/spa as its README runs it: the page signs in, calls the API on
// another origin (CORS, DPoP), and signs out.
func TestExampleSPA(t *testing.T) {
	b := startBrowser(t)
	appAddr, apiAddr := freePort(t), freePort(t)
	gh := startGatehouse(t, reserve(t), ghOptions{origins: []string{"http://" + appAddr}})
	if _, err := gh.svc.CreateUser(context.Background(), "ann", "correct horse", "user"); err != nil {
		t.Fatal(err)
	}
	runExample(t, "spa", []string{"GATEHOUSE_RESOURCE_KEY=" + resourceKey}, appAddr,
		"-gatehouse", gh.URL, "-app", appAddr, "-api", apiAddr)
	tb := b.open("spa", "http://"+appAddr)
	tb.waitFor(`!document.getElementById("login").hidden`, 10*time.Second)
	tb.eval(`document.querySelector("[name=username]").value = "ann";
		document.querySelector("[name=password]").value = "correct horse";
		document.querySelector("#login button").click(); return null`, nil)
	tb.waitFor(`document.getElementById("who").textContent === "ann"`, 10*time.Second)
	tb.eval(`document.getElementById("load").click(); return null`, nil)
	tb.waitFor(`document.querySelectorAll("#list li").length === 2`, 10*time.Second)
	var status, tokenType string
	tb.eval(`return document.getElementById("status").textContent`, &status)
	tb.eval(`return JSON.parse(atob(gh._token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).cnf ? "DPoP" : "Bearer"`, &tokenType)
	if status != "2 orders" || tokenType != "DPoP" {
		t.Fatalf("status %q, token %s", status, tokenType)
	}
	tb.eval(`document.getElementById("logout").click(); return null`, nil)
	tb.waitFor(`document.getElementById("status").textContent === "Signed out: logout"`, 10*time.Second)
	if strings.Contains(status, "error") {
		t.Fatal(status)
	}
}
