package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
)

func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("GATEHOUSE_REQUIRE_NGINX") != "" {
		t.Fatal("GATEHOUSE_REQUIRE_NGINX is set but nginx is not installed")
	}
	t.Skip("nginx not installed: reverse-proxy test skipped (apt-get install nginx; CI requires it)")
	return ""
}

// selfSigned writes a certificate for 127.0.0.1 and returns the file
// paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func freePort(t *testing.T) string {
	ln := reserve(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startNginx runs deploy/nginx.conf, adapted only in its addresses and
// paths, in front of upstream on httpsAddr; it returns the access log's
// path and a pool trusting nginx's certificate.
func startNginx(t *testing.T, upstream, httpsAddr string) (accessLog string, pool *x509.CertPool) {
	t.Helper()
	bin := nginxPath(t)
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	conf, err := os.ReadFile("../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	accessLog = filepath.Join(dir, "access.log")
	site := string(conf)
	for _, r := range [][2]string{
		{"server 127.0.0.1:8080;", "server " + upstream + ";"},
		{"listen 443 ssl;", "listen " + httpsAddr + " ssl;"},
		{"listen 80;", "listen " + freePort(t) + ";"},
		{"/etc/ssl/certs/auth.example.com.pem", cert},
		{"/etc/ssl/private/auth.example.com.key", key},
		{"/var/log/nginx/gatehouse.access.log", accessLog},
	} {
		if !strings.Contains(site, r[0]) {
			t.Fatalf("deploy/nginx.conf no longer contains %q", r[0])
		}
		site = strings.ReplaceAll(site, r[0], r[1])
	}
	os.WriteFile(filepath.Join(dir, "gatehouse.conf"), []byte(site), 0o600)
	main := `daemon off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ` + dir + `/body;
    proxy_temp_path ` + dir + `/proxy;
    fastcgi_temp_path ` + dir + `/fastcgi;
    uwsgi_temp_path ` + dir + `/uwsgi;
    scgi_temp_path ` + dir + `/scgi;
    include ` + dir + `/gatehouse.conf;
}
`
	if os.Geteuid() == 0 {
		main = "user root;\n" + main // workers must reach the temp directory
	}
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600)
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second // workers may hold the output pipe a moment
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: the master stops its workers too (a SIGKILL would orphan them).
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", httpsAddr); err == nil {
			c.Close()
			return accessLog, pool
		}
		if time.Now().After(deadline) {
			errs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s %s", out.String(), errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Login, refresh and a socket through the real nginx with deploy/nginx.conf,
// the client on another address than nginx: Gatehouse records the client's
// address from X-Forwarded-For (trusted proxy) and ignores a forged one.
func TestNginxReverseProxy(t *testing.T) {
	nginxPath(t)
	httpsAddr := freePort(t)
	issuer := "https://" + httpsAddr
	ghLn := reserve(t)
	gh := startGatehouse(t, ghLn, ghOptions{issuer: issuer, accessTTL: time.Minute,
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	accessLog, pool := startNginx(t, ghLn.Addr().String(), httpsAddr)

	jar, _ := cookiejar.New(nil)
	// The client connects from 127.0.0.2: not nginx's address, not trusted.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dialer.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path, body string, hdr map[string]string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, issuer+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		return res, out
	}
	creds := `{"username":"nia","password":"correct horse battery"}`
	if res, body := call("POST", "/v1/auth/register", creds, nil); res.StatusCode != 201 {
		t.Fatalf("register: %d %v", res.StatusCode, body)
	}
	forged := map[string]string{"Gatehouse-Transport": "cookie", "X-Forwarded-For": "203.0.113.9"}
	if res, body := call("POST", "/v1/auth/login", creds, forged); res.StatusCode != 200 {
		t.Fatalf("login: %d %v", res.StatusCode, body)
	}
	res, me := call("GET", "/v1/me", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("me: %d %v", res.StatusCode, me)
	}
	if ip := me["session"].(map[string]any)["ip"]; ip != "127.0.0.2" {
		t.Fatalf("session ip %v, want the client's 127.0.0.2 (not nginx's, not the forged one)", ip)
	}
	// Refresh with the cookie the browser would send (Path=/v1/auth, Secure).
	if res, body := call("POST", "/v1/auth/refresh", "", map[string]string{"Gatehouse-Transport": "cookie"}); res.StatusCode != 200 {
		t.Fatalf("refresh through nginx: %d %v", res.StatusCode, body)
	}

	// A socket by cookie, and one authenticated in-band as a browser SPA
	// does, both through nginx's upgrade handling.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+httpsAddr+"/v1/ws", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("cookie socket through nginx: %v", err)
	}
	defer c.CloseNow()
	if typ := readType(t, ctx, c); typ != "hello" {
		t.Fatalf("cookie socket: first message %q", typ)
	}
	_, body := call("POST", "/v1/auth/login", creds, map[string]string{"Gatehouse-Transport": "refresh-cookie"})
	at, _ := body["access_token"].(string)
	if at == "" {
		t.Fatalf("refresh-cookie login: %v", body)
	}
	c2, _, err := websocket.Dial(ctx, "wss://"+httpsAddr+"/v1/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: client.Transport}, HTTPHeader: http.Header{"Origin": {issuer}}})
	if err != nil {
		t.Fatalf("in-band socket through nginx: %v", err)
	}
	defer c2.CloseNow()
	c2.Write(ctx, websocket.MessageText, []byte(`{"type":"auth","access_token":"`+at+`"}`))
	if typ := readType(t, ctx, c2); typ != "hello" {
		t.Fatalf("in-band socket: first message %q", typ)
	}
	// Logging out that session closes its socket with 4003, through nginx.
	if res, _ := call("POST", "/v1/auth/logout", "", map[string]string{"Authorization": "Bearer " + at}); res.StatusCode != 204 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	for {
		if _, _, err := c2.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != 4003 {
				t.Fatalf("socket ended with %v, want 4003", err)
			}
			break
		}
	}

	// A token in a query string is refused, and neither nginx's log nor
	// Gatehouse's holds it.
	if res, _ := call("GET", "/v1/me?access_token=leaked-"+at[:12], "", nil); res.StatusCode != 400 {
		t.Fatalf("query token: %d", res.StatusCode)
	}
	time.Sleep(100 * time.Millisecond) // nginx writes its log line after the response
	logged, _ := os.ReadFile(accessLog)
	if !strings.Contains(string(logged), "GET /v1/me ") || strings.Contains(string(logged), "leaked") {
		t.Fatalf("nginx access log:\n%s", logged)
	}
	if strings.Contains(gh.logs.String(), "leaked") {
		t.Fatal("the query token reached Gatehouse's log")
	}
}

func readType(t *testing.T, ctx context.Context, c *websocket.Conn) string {
	t.Helper()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Type string }
	json.Unmarshal(data, &m)
	return m.Type
}
