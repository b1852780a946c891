package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
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
	waitListening(t, addr, out)
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

// examples/chat: two users chat over Socket.IO; a ban drops the banned
// user's socket within a second, and the other user sees them leave.
func TestExampleChat(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("..", "examples", "chat", "node_modules", "socket.io"))
	}
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("node and examples/chat/node_modules are required (npm ci there): %v", err)
		}
		t.Skip("node or examples/chat/node_modules missing: skipped")
	}
	b := startBrowser(t)
	chatAddr := freePort(t)
	gh := startGatehouse(t, reserve(t), ghOptions{origins: []string{"http://" + chatAddr}})
	for _, u := range []string{"ann", "bob"} {
		if _, err := gh.svc.CreateUser(context.Background(), u, "password-"+u, "user"); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = filepath.Join("..", "examples", "chat")
	cmd.Env = append(os.Environ(), "GATEHOUSE_URL="+gh.URL, "GATEHOUSE_RESOURCE_KEY="+resourceKey, "CHAT_ADDR="+chatAddr)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	waitListening(t, chatAddr, out)
	signIn := func(tb *tab, user string) {
		tb.eval(`document.querySelector("[name=username]").value = "`+user+`";
			document.querySelector("[name=password]").value = "password-`+user+`";
			document.querySelector("#login button").click(); return null`, nil)
		tb.waitFor(`[...document.querySelectorAll("#log li")].some((li) => li.textContent === "connected")`, 10*time.Second)
	}
	ann := b.open("ann", "http://"+chatAddr)
	signIn(ann, "ann")
	// bob in another profile: his own cookies.
	bobBrowser := startBrowser(t)
	bob := bobBrowser.open("bob", "http://"+chatAddr)
	signIn(bob, "bob")
	ann.eval(`document.querySelector("[name=text]").value = "hello bob"; document.querySelector("#say button").click(); return null`, nil)
	bob.waitFor(`[...document.querySelectorAll("#log li")].some((li) => li.textContent === "ann: hello bob")`, 5*time.Second)

	disabled := true
	start := time.Now()
	if _, err := gh.svc.ChangeUser(context.Background(), gh.user(t, "ann"), auth.UserChange{Disabled: &disabled}, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	ann.waitFor(`[...document.querySelectorAll("#log li")].some((li) => li.textContent === "session ended (revoked)")`, time.Second)
	t.Logf("the banned user's chat socket ended %v after the ban", time.Since(start).Round(time.Millisecond))
	bob.waitFor(`[...document.querySelectorAll("#log li")].some((li) => li.textContent.startsWith("ann left"))`, 5*time.Second)
}
