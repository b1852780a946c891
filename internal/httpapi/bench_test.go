package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// BenchmarkRefreshHTTP is one refresh over HTTP on SQLite (loopback, body
// transport): as a bearer session, and as a DPoP-bound one with a proof
// per request (ES256, as browsers sign, and EdDSA). Proofs are made
// beforehand: the server's work is measured, not the client's signing.
// Target: a bound refresh within 1.3× of a bearer one.
func BenchmarkRefreshHTTP(b *testing.B) {
	for _, alg := range []string{"", "ES256", "EdDSA"} {
		name := alg
		if name == "" {
			name = "Bearer"
		}
		b.Run(name, func(b *testing.B) {
			s := newServer(b, options{realClock: true})
			body, _ := json.Marshal(map[string]string{"username": "ann", "password": "pw-ann-long"})
			http.Post(s.URL+"/v1/auth/register", "application/json", bytes.NewReader(body))
			var k *dpop.Signer
			if alg != "" {
				k, _ = dpop.NewSigner(alg)
			}
			const pool = 1 << 13
			proofs := make([]string, pool)
			if k != nil {
				for i := range proofs {
					proofs[i] = k.Proof("POST", issuerURL+"/v1/auth/refresh", "", "", time.Now())
				}
			}
			post := func(path, proof string, in any) map[string]any {
				j, _ := json.Marshal(in)
				req, _ := http.NewRequest("POST", s.URL+path, bytes.NewReader(j))
				req.Header.Set("Content-Type", "application/json")
				if proof != "" {
					req.Header.Set("DPoP", proof)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer res.Body.Close()
				var out map[string]any
				raw, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
					b.Fatalf("%s: %d %s", path, res.StatusCode, raw)
				}
				return out
			}
			loginProof := ""
			if k != nil {
				loginProof = k.Proof("POST", issuerURL+"/v1/auth/login", "", "", time.Now())
			}
			rt := post("/v1/auth/login", loginProof, map[string]string{"username": "ann", "password": "pw-ann-long"})["refresh_token"].(string)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i >= pool && k != nil {
					b.Fatal("proof pool exhausted: run with -benchtime below 8192x")
				}
				rt = post("/v1/auth/refresh", proofs[i%pool], map[string]string{"refresh_token": rt})["refresh_token"].(string)
			}
		})
	}
}

// BenchmarkForwardAuth is GET /v1/auth/verify beside GET /v1/me over HTTP
// (SQLite, loopback): verify answers from memory (signature, revocation
// state, cached username), /v1/me reads the session and the user.
func BenchmarkForwardAuth(b *testing.B) {
	s := newServer(b, options{realClock: true})
	body, _ := json.Marshal(map[string]string{"username": "ann", "password": "pw-ann-long"})
	http.Post(s.URL+"/v1/auth/register", "application/json", bytes.NewReader(body))
	res, err := http.Post(s.URL+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var tk map[string]any
	json.NewDecoder(res.Body).Decode(&tk)
	res.Body.Close()
	at := tk["access_token"].(string)
	for _, path := range []string{"/v1/auth/verify", "/v1/me"} {
		b.Run(strings.TrimPrefix(path, "/v1/"), func(b *testing.B) {
			req, _ := http.NewRequest("GET", s.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+at)
			b.ReportAllocs()
			for b.Loop() {
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != 200 {
					b.Fatal(err, res.StatusCode)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	// Throughput with 16 concurrent clients, as a proxy would call it.
	for _, path := range []string{"/v1/auth/verify", "/v1/me"} {
		b.Run("parallel/"+strings.TrimPrefix(path, "/v1/"), func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", s.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+at)
				for pb.Next() {
					res, err := http.DefaultClient.Do(req)
					if err != nil || res.StatusCode != 200 {
						b.Fatal(err, res.StatusCode)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}

// BenchmarkServerWork is the server's own work per request, without a
// client or a socket: the handler called directly with a recorded
// response, so -benchmem counts the server's allocations alone (handler,
// domain, store and driver). Refresh (body transport) and /v1/me, on
// SQLite and on PostgreSQL (skipped without one, like the store's tests).
func BenchmarkServerWork(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(t testing.TB) store.Store
	}{
		{"SQLite", nil},
		{"PostgreSQL", func(t testing.TB) store.Store {
			st, err := postgres.Open(context.Background(), postgres.TestSchema(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	} {
		b.Run(backend.name, func(b *testing.B) {
			s := newServer(b, options{realClock: true, open: backend.open})
			h := s.Config.Handler
			call := func(method, path, auth string, body []byte) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, issuerURL+path, bytes.NewReader(body))
				req.RemoteAddr = "192.0.2.10:4711"
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 && rec.Code != 201 {
					b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
				}
				return rec
			}
			creds, _ := json.Marshal(map[string]string{"username": "ann", "password": "pw-ann-long"})
			call("POST", "/v1/auth/register", "", creds)
			var tk struct {
				Access  string `json:"access_token"`
				Refresh string `json:"refresh_token"`
			}
			json.Unmarshal(call("POST", "/v1/auth/login", "", creds).Body.Bytes(), &tk)
			b.Run("Refresh", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					body := append(append([]byte(`{"refresh_token":"`), tk.Refresh...), `"}`...)
					if err := json.Unmarshal(call("POST", "/v1/auth/refresh", "", body).Body.Bytes(), &tk); err != nil || tk.Refresh == "" {
						b.Fatal("no refresh token in the answer")
					}
				}
			})
			b.Run("Me", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rec := call("GET", "/v1/me", tk.Access, nil); !bytes.Contains(rec.Body.Bytes(), []byte(`"username":"ann"`)) {
						b.Fatalf("/v1/me: %s", rec.Body)
					}
				}
			})
		})
	}
}
