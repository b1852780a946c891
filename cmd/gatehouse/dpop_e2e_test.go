package main

import (
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// Two `gatehouse serve --dpop-nonce` processes on one PostgreSQL database:
// a nonce either issues is accepted by the other (stateless, keyed by the
// shared master secret); a session bound on A refreshes on B only with the
// key's proof; B's access tokens carry the binding to A.
func TestDPoPAcrossPostgresInstances(t *testing.T) {
	db := postgres.TestSchema(t)
	a := startDB(t, db, pgEnv, "--dpop-nonce")
	b := startDB(t, db, pgEnv, "--dpop-nonce")
	const issuer = "http://gatehouse.test" // startDB's --issuer: proofs name it, not the port
	k, err := dpop.NewSigner("ES256")
	if err != nil {
		t.Fatal(err)
	}
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	login := map[string]string{"username": "ann", "password": "ann-password"}
	// Without a nonce: use_dpop_nonce and the nonce, from B.
	proof := func(path, nonce string) map[string]string {
		return map[string]string{"DPoP": k.Proof("POST", issuer+path, "", nonce, time.Now())}
	}
	st, out, hdr := b.callHeaders(t, "POST", "/v1/auth/login", proof("/v1/auth/login", ""), login)
	nonce := hdr.Get("DPoP-Nonce")
	if st != 401 || out["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("login without a nonce on B: %d %v", st, out)
	}
	// B's nonce on A.
	st, out = a.callWith(t, "POST", "/v1/auth/login", proof("/v1/auth/login", nonce), login)
	if st != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("login on A with B's nonce: %d %v", st, out)
	}
	refresh := out["refresh_token"].(string)
	body := map[string]string{"refresh_token": refresh}
	// The bound session on B: refused without the key, nothing rotated...
	if st, out := b.callWith(t, "POST", "/v1/auth/refresh", nil, body); st != 401 || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("refresh on B without a proof: %d %v", st, out)
	}
	thief, _ := dpop.NewSigner("EdDSA")
	if st, out := b.callWith(t, "POST", "/v1/auth/refresh", map[string]string{"DPoP": thief.Proof("POST", issuer+"/v1/auth/refresh", "", nonce, time.Now())}, body); st != 401 || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("refresh on B with a thief's key: %d %v", st, out)
	}
	// ...so the same token rotates with the key's proof.
	st, out = b.callWith(t, "POST", "/v1/auth/refresh", proof("/v1/auth/refresh", nonce), body)
	if st != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("refresh on B with the key: %d %v", st, out)
	}
	access := out["access_token"].(string)
	// B's token on A: only as DPoP with the key's proof.
	get := func(p *proc, h map[string]string) (int, string) {
		st, out := p.callWith(t, "GET", "/v1/me", h, nil)
		e, _ := out["error"].(string)
		return st, e
	}
	if st, e := get(a, map[string]string{"Authorization": "Bearer " + access}); st != 401 || e != "invalid_dpop_proof" {
		t.Fatalf("B's bound token as Bearer on A: %d %s", st, e)
	}
	if st, e := get(a, map[string]string{"Authorization": "DPoP " + access, "DPoP": k.Proof("GET", issuer+"/v1/me", access, nonce, time.Now())}); st != 200 {
		t.Fatalf("B's bound token with its proof on A: %d %s", st, e)
	}
}
