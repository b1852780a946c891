package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
)

func caddyPath(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("caddy"); err == nil {
		return path
	}
	if os.Getenv("GATEHOUSE_REQUIRE_CADDY") != "" {
		t.Fatal("GATEHOUSE_REQUIRE_CADDY is set but caddy is not installed")
	}
	t.Skip("caddy not installed: forward-auth test skipped (apt-get install caddy; CI requires it)")
	return ""
}

// recipe reads a deploy/ file and swaps addresses, failing if one is gone
// (the test must run the file as shipped).
func recipe(t *testing.T, name string, swaps [][2]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range swaps {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("deploy/%s no longer contains %q", name, r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// waitListening waits for addr to accept connections.
func waitListening(t *testing.T, addr string, out *syncbuf.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening: %s", addr, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNginxForwardAuth runs deploy/nginx-forward-auth.conf on httpsAddr.
func startNginxForwardAuth(t *testing.T, gatehouse, app, httpsAddr string) *x509.CertPool {
	bin := nginxPath(t)
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	site := recipe(t, "nginx-forward-auth.conf", [][2]string{
		{"server 127.0.0.1:9000;", "server " + app + ";"},
		{"server 127.0.0.1:8080;", "server " + gatehouse + ";"},
		{"listen 443 ssl;", "listen " + httpsAddr + " ssl;"},
		{"/etc/ssl/certs/app.example.com.pem", cert},
		{"/etc/ssl/private/app.example.com.key", key},
	})
	os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o600)
	main := "daemon off;\nworker_processes 1;\npid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log warn;\n" +
		"events { worker_connections 256; }\nhttp {\n access_log off;\n client_body_temp_path " + dir + "/body;\n proxy_temp_path " + dir +
		"/proxy;\n fastcgi_temp_path " + dir + "/fastcgi;\n uwsgi_temp_path " + dir + "/uwsgi;\n scgi_temp_path " + dir + "/scgi;\n include " + dir + "/site.conf;\n}\n"
	if os.Geteuid() == 0 {
		main = "user root;\n" + main
	}
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600)
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = out, out, 5*time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	waitListening(t, httpsAddr, out)
	return pool
}

// startCaddyForwardAuth runs deploy/Caddyfile.forward-auth on addr (plain
// HTTP: the site address is swapped, TLS is Caddy's own business).
func startCaddyForwardAuth(t *testing.T, gatehouse, app, addr string) {
	bin := caddyPath(t)
	dir := t.TempDir()
	site := recipe(t, "Caddyfile.forward-auth", [][2]string{
		{"app.example.com {", "http://" + addr + " {"},
		{"forward_auth 127.0.0.1:8080 {", "forward_auth " + gatehouse + " {"},
		{"reverse_proxy 127.0.0.1:9000", "reverse_proxy " + app},
	})
	site = "{\n\tadmin off\n\tauto_https off\n}\n\n" + site
	conf := filepath.Join(dir, "Caddyfile")
	os.WriteFile(conf, []byte(site), 0o600)
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = out, out, 5*time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	waitListening(t, addr, out)
}

// identityEcho is the protected application: it answers with the
// Gatehouse-* headers it received, and counts calls.
type identityEcho struct {
	mu    sync.Mutex
	calls int
}

func (e *identityEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.calls++
	e.mu.Unlock()
	got := map[string][]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "Gatehouse-") || k == "Authorization" {
			got[k] = v
		}
	}
	json.NewEncoder(w).Encode(got)
}

func (e *identityEcho) count() int { e.mu.Lock(); defer e.mu.Unlock(); return e.calls }

// Forward auth through the real nginx and Caddy with the deploy/ recipes:
// no token never reaches the application; a valid one arrives with the
// right identity and without anything the client forged; a revoked one is
// refused within a second.
func TestForwardAuthRecipes(t *testing.T) {
	for _, proxy := range []string{"nginx", "caddy"} {
		t.Run(proxy, func(t *testing.T) {
			if proxy == "nginx" {
				nginxPath(t)
			} else {
				caddyPath(t)
			}
			ghLn := reserve(t)
			gh := startGatehouse(t, ghLn, ghOptions{accessTTL: time.Minute, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
			app := &identityEcho{}
			appURL := listen(t, app)
			addr := freePort(t)
			client := &http.Client{Timeout: 10 * time.Second}
			base := "http://" + addr
			if proxy == "nginx" {
				pool := startNginxForwardAuth(t, ghLn.Addr().String(), strings.TrimPrefix(appURL, "http://"), addr)
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
				base = "https://" + addr
			} else {
				startCaddyForwardAuth(t, ghLn.Addr().String(), strings.TrimPrefix(appURL, "http://"), addr)
			}
			if _, err := gh.svc.CreateUser(t.Context(), "ann", "pw-ann-long", "user"); err != nil {
				t.Fatal(err)
			}
			tk, err := gh.svc.Login(t.Context(), "ann", "pw-ann-long", auth.Meta{IP: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			get := func(hdr map[string]string) (int, map[string][]string) {
				req, _ := http.NewRequest("GET", base+"/orders?page=2", nil)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var got map[string][]string
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode == 200 {
					if err := json.Unmarshal(b, &got); err != nil {
						t.Fatalf("the application's answer: %q", b)
					}
				}
				return res.StatusCode, got
			}
			forged := map[string]string{"Gatehouse-User-Id": "root", "Gatehouse-Role": "admin", "Gatehouse-Permissions": "everything", "Gatehouse-Username": "root"}
			if st, _ := get(forged); st != 401 || app.count() != 0 {
				t.Fatalf("forged identity without a token: %d (application called %d times)", st, app.count())
			}
			withToken := map[string]string{"Authorization": "Bearer " + tk.AccessToken}
			for k, v := range forged {
				withToken[k] = v
			}
			st, got := get(withToken)
			if st != 200 {
				t.Fatalf("a valid token: %d", st)
			}
			want := map[string]string{"Gatehouse-User-Id": tk.User.ID, "Gatehouse-Username": "ann", "Gatehouse-Role": "user", "Gatehouse-Session-Id": tk.Session.ID}
			for k, v := range want {
				if len(got[k]) != 1 || got[k][0] != v {
					t.Errorf("%s reached the application as %q, want %q", k, got[k], v)
				}
			}
			if p := got["Gatehouse-Permissions"]; len(p) > 1 || (len(p) == 1 && p[0] != "") {
				t.Errorf("the client's forged permissions reached the application: %q", p)
			}
			// Revoked: refused through the proxy within a second.
			if err := gh.svc.Logout(t.Context(), tk.RefreshToken, "", auth.Meta{}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for {
				if st, _ := get(withToken); st == 401 {
					break
				}
				if time.Since(start) > time.Second {
					t.Fatal("a revoked token still passes after a second")
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%s: revoked token refused after %v", proxy, time.Since(start).Round(time.Millisecond))
		})
	}
}
