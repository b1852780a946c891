package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/gatehouse-auth/gatehouse/docs"
	ghauth "github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/factortest"
	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
)

// specOp is one operation of docs/openapi.yaml.
type specOp struct {
	method, path string // path is the template, /v1/sessions/{id}
	re           *regexp.Regexp
}

// contract drives the real server and checks every exchange against
// docs/openapi.yaml with libopenapi-validator: the request (when the test
// means it to be valid), the status, the body's schema and the headers
// the document marks required (WWW-Authenticate, Retry-After, ETag).
type contract struct {
	t   *testing.T
	s   *server
	v   validator.Validator
	ops []specOp
	// ok counts the exchanges per operation that ended in success (2xx,
	// 101, 304); every operation must have one.
	ok map[string]int
}

func loadSpec(t *testing.T) (libopenapi.Document, *v3.Document) {
	t.Helper()
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.yaml does not build: %v", err)
	}
	return doc, &model.Model
}

func newContract(t *testing.T, s *server) *contract {
	doc, model := loadSpec(t)
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("openapi.yaml is not valid OpenAPI: %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s (line %d)", se.Reason, se.KeywordLocation, se.Line)
			}
		}
		t.FailNow()
	}
	c := &contract{t: t, s: s, v: v, ok: map[string]int{}}
	for p := model.Paths.PathItems.First(); p != nil; p = p.Next() {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p.Key()), `[^/]+`) + "$")
		for m := range p.Value().GetOperations().KeysFromOldest() {
			c.ops = append(c.ops, specOp{strings.ToUpper(m), p.Key(), re})
		}
	}
	return c
}

func (c *contract) opOf(method, path string) string {
	for _, o := range c.ops {
		if o.method == method && o.re.MatchString(path) {
			return o.method + " " + o.path
		}
	}
	return ""
}

// exchange is one request for contract.do.
type exchange struct {
	method, path string
	body         string // sent as is
	ctype        string // Content-Type of body (application/json when empty and body set)
	hdr          map[string]string
	status       int  // the status the test expects
	badRequest   bool // the request breaks the document on purpose: validate the response only
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c *contract) do(x exchange) reply {
	c.t.Helper()
	build := func() *http.Request {
		var rd io.Reader
		if x.body != "" {
			rd = strings.NewReader(x.body)
		}
		req, err := http.NewRequest(x.method, c.s.URL+x.path, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		if x.body != "" {
			req.Header.Set("Content-Type", "application/json")
			if x.ctype != "" {
				req.Header.Set("Content-Type", x.ctype)
			}
		}
		for k, v := range x.hdr {
			req.Header.Set(k, v)
		}
		return req
	}
	res, err := http.DefaultClient.Do(build())
	if err != nil {
		c.t.Fatal(err)
	}
	var raw []byte
	if res.StatusCode != http.StatusSwitchingProtocols { // a socket's body is the socket
		raw, _ = io.ReadAll(res.Body)
	}
	res.Body.Close()
	name := x.method + " " + x.path
	if res.StatusCode != x.status {
		c.t.Fatalf("%s: status %d, want %d: %s", name, res.StatusCode, x.status, raw)
	}
	op := c.opOf(x.method, strings.SplitN(x.path, "?", 2)[0])
	if op == "" {
		c.t.Fatalf("%s: no operation in openapi.yaml", name)
	}
	req := build()
	if !x.badRequest {
		if ok, errs := c.v.ValidateHttpRequestSync(req); !ok {
			c.t.Errorf("%s: request does not match openapi.yaml:%s", name, describe(errs))
		}
		req = build() // the validator read the body
	}
	res.Body = io.NopCloser(bytes.NewReader(raw))
	if ok, errs := c.v.ValidateHttpResponse(req, res); !ok {
		c.t.Errorf("%s: %d response does not match openapi.yaml:%s\n%s", name, res.StatusCode, describe(errs), raw)
	}
	if s := res.StatusCode; s < 300 || s == 101 || s == 304 {
		c.ok[op]++
	}
	out := reply{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out
}

func describe[E interface{ Error() string }](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s", e.Error())
	}
	return b.String()
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestOpenAPIDocumentMatchesServer drives every operation of
// docs/openapi.yaml against the real server, successes and the failures
// that carry headers, and validates each exchange; then checks that the
// document and the server's routes are the same set.
func TestOpenAPIDocumentMatchesServer(t *testing.T) {
	s := newServer(t, options{})
	c := newContract(t, s)
	root := s.admin(t)
	auth := bearer
	key := map[string]string{"Authorization": "Bearer " + resourceKey}
	form := "application/x-www-form-urlencoded"

	// Public and auth routes.
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: jsonBody(map[string]string{"username": "ann", "password": "pw-ann-long"}), status: 201})
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: jsonBody(map[string]string{"username": "ann", "password": "pw-ann-long"}), status: 409})
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: `{"username":"bob","password":"x"}`, status: 400})
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: `{"username":"bob","pass":"x"}`, status: 400, badRequest: true})
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: `{"username":"` + strings.Repeat("a", 70<<10) + `"}`, status: 413, badRequest: true})
	creds := jsonBody(map[string]string{"username": "ann", "password": "pw-ann-long"})
	login := c.do(exchange{method: "POST", path: "/v1/auth/login", body: creds, status: 200})
	ann := tokens{login.body["access_token"].(string), login.body["refresh_token"].(string), login.body["session_id"].(string)}
	ck := c.do(exchange{method: "POST", path: "/v1/auth/login", body: creds, hdr: map[string]string{"Gatehouse-Transport": "cookie"}, status: 200})
	if _, has := ck.body["access_token"]; has || len(ck.header.Values("Set-Cookie")) != 2 {
		t.Fatalf("cookie transport: %s %v", ck.raw, ck.header.Values("Set-Cookie"))
	}
	spa := c.do(exchange{method: "POST", path: "/v1/auth/login", body: creds, hdr: map[string]string{"Gatehouse-Transport": "refresh-cookie"}, status: 200})
	c.do(exchange{method: "POST", path: "/v1/auth/login", body: jsonBody(map[string]string{"username": "ann", "password": "wrong-one"}), status: 401})
	c.do(exchange{method: "POST", path: "/v1/auth/login", body: creds, hdr: map[string]string{"Gatehouse-Transport": "pigeon"}, status: 400, badRequest: true})

	r := c.do(exchange{method: "POST", path: "/v1/auth/refresh", body: jsonBody(map[string]string{"refresh_token": ann.refresh}), status: 200})
	s.clock.Advance(time.Minute) // past the reuse grace
	c.do(exchange{method: "POST", path: "/v1/auth/refresh", body: jsonBody(map[string]string{"refresh_token": ann.refresh}), status: 401})
	_ = r // the reuse above revoked that session; log in again
	login = c.do(exchange{method: "POST", path: "/v1/auth/login", body: creds, status: 200})
	ann = tokens{login.body["access_token"].(string), login.body["refresh_token"].(string), login.body["session_id"].(string)}
	spaCookie := ""
	for _, sc := range spa.header.Values("Set-Cookie") {
		spaCookie, _, _ = strings.Cut(sc, ";")
	}
	c.do(exchange{method: "POST", path: "/v1/auth/refresh", hdr: map[string]string{"Gatehouse-Transport": "refresh-cookie", "Cookie": spaCookie}, status: 200})

	c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate", body: `{"password":"pw-ann-long"}`, hdr: auth(ann.access), status: 200})
	c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate", body: `{"password":"nope-nope"}`, hdr: auth(ann.access), status: 401})

	// The caller's own routes, and the 401s with their challenges.
	me := c.do(exchange{method: "GET", path: "/v1/me", hdr: auth(ann.access), status: 200})
	annID := me.body["user"].(map[string]any)["id"].(string)
	if got := c.do(exchange{method: "GET", path: "/v1/me", status: 401, badRequest: true}); got.header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no token: WWW-Authenticate %q", got.header.Get("WWW-Authenticate"))
	}
	c.do(exchange{method: "GET", path: "/v1/me", hdr: auth("not.a.token"), status: 401})
	c.do(exchange{method: "GET", path: "/v1/me?access_token=" + ann.access, status: 400, badRequest: true})
	c.do(exchange{method: "GET", path: "/v1/me/events?limit=2", hdr: auth(ann.access), status: 200})
	c.do(exchange{method: "GET", path: "/v1/me/events?type=login_failed", hdr: auth(ann.access), status: 200})
	c.do(exchange{method: "GET", path: "/v1/me/events?limit=0", hdr: auth(ann.access), status: 400, badRequest: true})
	sessions := c.do(exchange{method: "GET", path: "/v1/sessions", hdr: auth(ann.access), status: 200})
	var other string
	for _, x := range sessions.body["sessions"].([]any) {
		if m := x.(map[string]any); m["current"] == false {
			other = m["id"].(string)
		}
	}
	c.do(exchange{method: "DELETE", path: "/v1/sessions/" + other, hdr: auth(ann.access), status: 204})
	c.do(exchange{method: "DELETE", path: "/v1/sessions/no-such-session", hdr: auth(ann.access), status: 404})
	c.do(exchange{method: "DELETE", path: "/v1/sessions?scope=others", hdr: auth(ann.access), status: 204})
	c.do(exchange{method: "DELETE", path: "/v1/sessions?scope=some", hdr: auth(ann.access), status: 400, badRequest: true})
	c.do(exchange{method: "POST", path: "/v1/me/password", body: jsonBody(map[string]string{"current_password": "pw-ann-long", "new_password": "pw-ann-longer"}), hdr: auth(ann.access), status: 204})
	c.do(exchange{method: "POST", path: "/v1/me/password", body: jsonBody(map[string]string{"current_password": "pw-ann-long", "new_password": "pw-ann-longest"}), hdr: auth(ann.access), status: 401})

	// WebSocket: a plain GET is not an upgrade; an upgrade switches.
	c.do(exchange{method: "GET", path: "/v1/ws", hdr: auth(ann.access), status: 426})
	c.do(exchange{method: "GET", path: "/v1/ws", status: 401, badRequest: true})
	c.do(exchange{method: "GET", path: "/v1/ws", hdr: map[string]string{"Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket"}, status: 403})
	c.do(exchange{method: "GET", path: "/v1/ws", hdr: map[string]string{
		"Authorization": "Bearer " + ann.access, "Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	}, status: 101})

	// Step-up: an old sign-in is refused with the RFC 9470 challenge.
	s.clock.Advance(11 * time.Minute)
	stale := c.do(exchange{method: "POST", path: "/v1/auth/refresh", body: jsonBody(map[string]string{"refresh_token": root.refresh}), status: 200})
	su := c.do(exchange{method: "DELETE", path: "/v1/sessions?scope=all", hdr: auth(stale.body["access_token"].(string)), status: 401})
	if !strings.Contains(su.header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		t.Fatalf("step-up challenge: %q", su.header.Get("WWW-Authenticate"))
	}
	fresh := c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate", body: `{"password":"pw-root-long"}`, hdr: auth(stale.body["access_token"].(string)), status: 200})
	admin := auth(fresh.body["access_token"].(string))
	login = c.do(exchange{method: "POST", path: "/v1/auth/login", body: jsonBody(map[string]string{"username": "ann", "password": "pw-ann-longer"}), status: 200})
	ann = tokens{login.body["access_token"].(string), login.body["refresh_token"].(string), login.body["session_id"].(string)}

	// Admin.
	c.do(exchange{method: "GET", path: "/v1/admin/users?limit=1", hdr: admin, status: 200})
	if found := c.do(exchange{method: "GET", path: "/v1/admin/users?q=AN", hdr: admin, status: 200}); len(found.body["users"].([]any)) != 1 {
		t.Fatalf("search: %s", found.raw)
	}
	c.do(exchange{method: "GET", path: "/v1/admin/users", hdr: auth(ann.access), status: 403})
	created := c.do(exchange{method: "POST", path: "/v1/admin/users", body: `{"username":"cy","password":"pw-cy-long","role":"user"}`, hdr: admin, status: 201})
	cyID := created.body["user"].(map[string]any)["id"].(string)
	c.do(exchange{method: "POST", path: "/v1/admin/users", body: `{"username":"cy","password":"pw-cy-long"}`, hdr: admin, status: 409})
	c.do(exchange{method: "PATCH", path: "/v1/admin/users/" + cyID, body: `{"permissions":["docs:read"],"disabled":false}`, hdr: admin, status: 200})
	c.do(exchange{method: "PATCH", path: "/v1/admin/users/" + cyID, body: `{"role":"king"}`, hdr: admin, status: 400, badRequest: true})
	c.do(exchange{method: "PATCH", path: "/v1/admin/users/no-such-user", body: `{"disabled":true}`, hdr: admin, status: 404})
	c.do(exchange{method: "GET", path: "/v1/admin/users/" + annID + "/sessions", hdr: admin, status: 200})
	if got := c.do(exchange{method: "GET", path: "/v1/admin/users/" + cyID, hdr: admin, status: 200}); got.body["user"].(map[string]any)["permissions"].([]any)[0] != "docs:read" {
		t.Fatalf("get user: %s", got.raw)
	}
	c.do(exchange{method: "GET", path: "/v1/admin/users/no-such-user", hdr: admin, status: 404})
	c.do(exchange{method: "GET", path: "/v1/admin/users/" + cyID, hdr: auth(ann.access), status: 403})
	c.do(exchange{method: "DELETE", path: "/v1/admin/sessions/" + ann.session, hdr: admin, status: 204})
	c.do(exchange{method: "DELETE", path: "/v1/admin/users/" + annID + "/sessions", hdr: admin, status: 204})
	c.do(exchange{method: "GET", path: "/v1/admin/events?type=login_failed&user_id=" + annID + "&limit=5", hdr: admin, status: 200})
	c.do(exchange{method: "GET", path: "/v1/admin/events?cursor=x", hdr: admin, status: 400, badRequest: true})
	c.do(exchange{method: "DELETE", path: "/v1/admin/users/" + cyID, hdr: admin, status: 204})

	// Resource servers.
	login = c.do(exchange{method: "POST", path: "/v1/auth/login", body: jsonBody(map[string]string{"username": "ann", "password": "pw-ann-longer"}), status: 200})
	ann = tokens{login.body["access_token"].(string), login.body["refresh_token"].(string), login.body["session_id"].(string)}
	in := c.do(exchange{method: "POST", path: "/v1/oauth/introspect", body: url.Values{"token": {ann.access}}.Encode(), ctype: form, hdr: key, status: 200})
	if in.body["active"] != true {
		t.Fatalf("introspect: %s", in.raw)
	}
	c.do(exchange{method: "POST", path: "/v1/oauth/introspect", body: url.Values{"token": {ann.refresh}}.Encode(), ctype: form, hdr: key, status: 200})
	c.do(exchange{method: "POST", path: "/v1/oauth/introspect", body: "token=nonsense", ctype: form, hdr: key, status: 200})
	c.do(exchange{method: "POST", path: "/v1/oauth/introspect", body: "token=x", ctype: form, hdr: auth("wrong-key"), status: 401})
	feed := c.do(exchange{method: "GET", path: "/v1/revocations", hdr: key, status: 200})
	c.do(exchange{method: "POST", path: "/v1/oauth/revoke", body: url.Values{"token": {ann.refresh}, "token_type_hint": {"refresh_token"}}.Encode(), ctype: form, hdr: key, status: 200})
	c.do(exchange{method: "GET", path: "/v1/revocations?wait=1s&since=" + feed.body["cursor"].(string), hdr: key, status: 200})
	c.do(exchange{method: "GET", path: "/v1/revocations?since=-1", hdr: key, status: 400, badRequest: true})

	// The token endpoint: both grants, and RFC 6749's errors.
	login = c.do(exchange{method: "POST", path: "/v1/auth/login", body: jsonBody(map[string]string{"username": "ann", "password": "pw-ann-longer"}), status: 200})
	tok := c.do(exchange{method: "POST", path: "/v1/oauth/token", body: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.body["refresh_token"].(string)}}.Encode(), ctype: form, status: 200})
	c.do(exchange{method: "POST", path: "/v1/oauth/token", body: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ghr_nonsense"}}.Encode(), ctype: form, status: 400})
	c.do(exchange{method: "POST", path: "/v1/oauth/token", body: "grant_type=password&username=ann", ctype: form, status: 400, badRequest: true})
	clientSecret, svcClient, errAdd := s.svc.AddClient(context.Background(), ghauth.ClientSpec{Name: "batch", Kind: "service", Permissions: []string{"reports:read"}})
	if errAdd != nil {
		t.Fatal(errAdd)
	}
	basic := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(svcClient.ID+":"+clientSecret))}
	c.do(exchange{method: "POST", path: "/v1/oauth/token", body: "grant_type=client_credentials", ctype: form, hdr: basic, status: 200})
	c.do(exchange{method: "POST", path: "/v1/oauth/token", body: "grant_type=client_credentials&scope=admin:all", ctype: form, hdr: basic, status: 400})
	c.do(exchange{method: "POST", path: "/v1/oauth/token", body: "grant_type=client_credentials", ctype: form, hdr: auth("ghs_wrong"), status: 401})
	if tok.body["refresh_token"] == nil {
		t.Fatalf("token endpoint refresh: %s", tok.raw)
	}
	c.do(exchange{method: "GET", path: "/v1/auth/verify", hdr: auth(tok.body["access_token"].(string)), status: 200})
	c.do(exchange{method: "GET", path: "/v1/auth/verify", status: 401, badRequest: true})
	c.do(exchange{method: "GET", path: "/.well-known/oauth-authorization-server", status: 200})
	c.do(exchange{method: "GET", path: "/.well-known/openid-configuration", status: 200})

	// Public documents.
	c.do(exchange{method: "GET", path: "/.well-known/jwks.json", status: 200})
	js := c.do(exchange{method: "GET", path: "/gatehouse.js", status: 200})
	c.do(exchange{method: "GET", path: "/gatehouse.js", hdr: map[string]string{"If-None-Match": js.header.Get("ETag")}, status: 304})
	c.do(exchange{method: "GET", path: "/healthz", status: 200})
	c.do(exchange{method: "GET", path: "/readyz", status: 200})
	c.do(exchange{method: "GET", path: "/metrics", status: 200})
	served := c.do(exchange{method: "GET", path: "/openapi.json", status: 200})
	var fromYAML, fromServer any
	want, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(want, &fromYAML)
	if err := json.Unmarshal(served.raw, &fromServer); err != nil || fromServer.(map[string]any)["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %v %.200s", err, served.raw)
	}
	// The same document, but for its servers: this server, by its issuer.
	servers := fromServer.(map[string]any)["servers"].([]any)
	if len(servers) != 1 || servers[0].(map[string]any)["url"] != "http://gatehouse.test" {
		t.Fatalf("/openapi.json servers = %v, want the issuer", servers)
	}
	fromYAML.(map[string]any)["servers"] = servers
	if a, b := jsonBody(fromYAML), jsonBody(fromServer); a != b {
		t.Fatal("/openapi.json is not docs/openapi.yaml")
	}

	// Second factors: TOTP, recovery codes, passkeys, the login's second
	// step, elevation and the admin's reset.
	c.do(exchange{method: "POST", path: "/v1/auth/register", body: `{"username":"eve","password":"pw-eve-long"}`, status: 201})
	eveLogin := c.do(exchange{method: "POST", path: "/v1/auth/login", body: `{"username":"eve","password":"pw-eve-long"}`, status: 200})
	eve := auth(eveLogin.body["access_token"].(string))
	c.do(exchange{method: "GET", path: "/v1/me/factors", hdr: eve, status: 200})
	totp := c.do(exchange{method: "POST", path: "/v1/me/factors/totp", body: `{"label":"phone"}`, hdr: eve, status: 201})
	secret := totp.body["secret"].(string)
	fid := totp.body["factor"].(map[string]any)["id"].(string)
	c.do(exchange{method: "POST", path: "/v1/me/factors/" + fid + "/verify", body: `{"code":"000000"}`, hdr: eve, status: 401})
	c.do(exchange{method: "POST", path: "/v1/me/factors/" + fid + "/verify", body: jsonBody(map[string]string{"code": totpAt(t, secret, s.clock.Now())}), hdr: eve, status: 200})
	mfaRequired := c.do(exchange{method: "POST", path: "/v1/auth/login", body: `{"username":"eve","password":"pw-eve-long"}`, status: 403})
	mt := mfaRequired.body["mfa_token"].(string)
	c.do(exchange{method: "POST", path: "/v1/auth/mfa", body: jsonBody(map[string]string{"mfa_token": mt, "code": "000000"}), status: 401})
	s.clock.Advance(30 * time.Second)
	second := c.do(exchange{method: "POST", path: "/v1/auth/mfa", body: jsonBody(map[string]string{"mfa_token": mt, "code": totpAt(t, secret, s.clock.Now())}), status: 200})
	eve = auth(second.body["access_token"].(string))
	c.do(exchange{method: "POST", path: "/v1/me/recovery-codes", hdr: eve, status: 200})
	wopts := c.do(exchange{method: "POST", path: "/v1/me/factors/webauthn/options", body: `{"label":"laptop"}`, hdr: eve, status: 200})
	pk := &factortest.Authenticator{Origin: "http://gatehouse.test", UV: true}
	att, err := pk.Register(wopts.raw)
	if err != nil {
		t.Fatal(err)
	}
	c.do(exchange{method: "POST", path: "/v1/me/factors/webauthn", body: string(att), hdr: eve, status: 201})
	mt = c.do(exchange{method: "POST", path: "/v1/auth/login", body: `{"username":"eve","password":"pw-eve-long"}`, status: 403}).body["mfa_token"].(string)
	mo := c.do(exchange{method: "POST", path: "/v1/auth/mfa/webauthn/options", body: jsonBody(map[string]string{"mfa_token": mt}), status: 200})
	as, _ := pk.Assert(mo.raw)
	c.do(exchange{method: "POST", path: "/v1/auth/mfa", body: `{"mfa_token":"` + mt + `","webauthn":` + string(as) + `}`, status: 200})
	po := c.do(exchange{method: "POST", path: "/v1/auth/passkey/options", status: 200})
	as, _ = pk.Assert(po.raw)
	c.do(exchange{method: "POST", path: "/v1/auth/passkey", body: `{"assertion":` + string(as) + `}`, status: 200})
	ro := c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate/webauthn/options", hdr: eve, status: 200})
	as, _ = pk.Assert(ro.raw)
	c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate", body: `{"webauthn":` + string(as) + `}`, hdr: eve, status: 200})
	s.clock.Advance(30 * time.Second)
	elevated := c.do(exchange{method: "POST", path: "/v1/auth/reauthenticate", body: jsonBody(map[string]string{"password": "pw-eve-long", "code": totpAt(t, secret, s.clock.Now())}),
		hdr: map[string]string{"Authorization": eve["Authorization"], "Gatehouse-Elevation": "one-time"}, status: 200})
	if !strings.HasPrefix(elevated.body["elevation_token"].(string), "ghe_") {
		t.Fatalf("elevation: %s", elevated.raw)
	}
	c.do(exchange{method: "DELETE", path: "/v1/me/factors/" + fid, hdr: eve, status: 204})
	eveID := c.do(exchange{method: "GET", path: "/v1/me", hdr: eve, status: 200}).body["user"].(map[string]any)["id"].(string)
	c.do(exchange{method: "DELETE", path: "/v1/admin/users/" + eveID + "/factors", hdr: admin, status: 204})

	// Logout, account deletion, revoke-all, and the store going away.
	c.do(exchange{method: "POST", path: "/v1/auth/logout", body: jsonBody(map[string]string{"refresh_token": "ghr_unknown"}), status: 204})
	c.do(exchange{method: "POST", path: "/v1/auth/logout", hdr: map[string]string{"Cookie": spaCookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, status: 403})
	bob := s.svc
	if _, err := bob.CreateUser(context.Background(), "dee", "pw-dee-long", "user"); err != nil {
		t.Fatal(err)
	}
	dee := c.do(exchange{method: "POST", path: "/v1/auth/login", body: `{"username":"dee","password":"pw-dee-long"}`, status: 200})
	c.do(exchange{method: "DELETE", path: "/v1/me", hdr: auth(dee.body["access_token"].(string)), status: 204})
	c.do(exchange{method: "POST", path: "/v1/admin/revoke-all", hdr: admin, status: 204})
	for i := 0; ; i++ {
		x := exchange{method: "POST", path: "/v1/auth/login", body: jsonBody(map[string]string{"username": "ann", "password": fmt.Sprintf("wrong-%d", i)}), status: 401}
		res, err := http.Post(s.URL+x.path, "application/json", strings.NewReader(x.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 429 {
			x.status = 429
			if got := c.do(x); got.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			break
		}
		if i > 50 {
			t.Fatal("login failures are never throttled")
		}
	}
	s.close()
	c.do(exchange{method: "GET", path: "/readyz", status: 503})

	for _, o := range c.ops {
		if c.ok[o.method+" "+o.path] == 0 {
			t.Errorf("%s %s: no successful exchange was validated", o.method, o.path)
		}
	}

	// The document and the server's routes are one set.
	var documented, routed []string
	for _, o := range c.ops {
		documented = append(documented, o.method+" "+o.path)
	}
	routed = httpapi.RoutePatterns()
	sort.Strings(documented)
	sort.Strings(routed)
	if !slices.Equal(documented, routed) {
		t.Fatalf("openapi.yaml and the server's routes differ:\ndocumented %v\nrouted     %v", documented, routed)
	}
}

// TestOpenAPIMethodsMatchAllow checks the other direction on each path: a
// method the document does not list is 405 with an Allow header naming
// exactly the documented ones (plus HEAD for GET, and OPTIONS). A literal
// path that a templated one also matches (/v1/me/factors/totp and
// /v1/me/factors/{id}) allows the methods of both.
func TestOpenAPIMethodsMatchAllow(t *testing.T) {
	s := newServer(t, options{})
	_, model := loadSpec(t)
	methods := map[string][]string{}
	for p := model.Paths.PathItems.First(); p != nil; p = p.Next() {
		for m := range p.Value().GetOperations().KeysFromOldest() {
			methods[p.Key()] = append(methods[p.Key()], strings.ToUpper(m))
		}
	}
	matches := func(template, path string) bool {
		ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
		if len(ts) != len(ps) {
			return false
		}
		for i := range ts {
			if ts[i] != ps[i] && !(strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")) {
				return false
			}
		}
		return true
	}
	for p := model.Paths.PathItems.First(); p != nil; p = p.Next() {
		var allow []string
		for template, ms := range methods {
			if template == p.Key() || (!strings.Contains(p.Key(), "{") && matches(template, p.Key())) {
				for _, m := range ms {
					if !slices.Contains(allow, m) {
						allow = append(allow, m)
					}
				}
			}
		}
		if slices.Contains(allow, "GET") {
			allow = append(allow, "HEAD")
		}
		allow = append(allow, "OPTIONS")
		sort.Strings(allow)
		path := strings.ReplaceAll(p.Key(), "{id}", "some-id")
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(allow, m) {
				continue
			}
			r := s.do(t, m, path, nil, nil)
			got := strings.Split(r.header.Get("Allow"), ", ")
			sort.Strings(got)
			if r.status != 405 || r.errCode() != "method_not_allowed" || !slices.Equal(got, allow) {
				t.Errorf("%s %s: %d Allow %v, want 405 Allow %v", m, path, r.status, got, allow)
			}
		}
	}
}
