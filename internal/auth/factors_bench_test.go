package auth

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/factortest"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// BenchmarkSecondFactor measures what second factors cost (docs/PERFORMANCE.md):
//   - Login/Password vs Login/PasswordAndTOTP, under the real argon2id
//     parameters: the second step adds a ticket and one UpdateMFA; target
//     within 1.1× (the hash dominates);
//   - TOTP: one code checked (unseal the secret, three HMAC-SHA1s);
//   - WebAuthnAssertion: one assertion verified by go-webauthn (ES256);
//   - Refresh/NoFactor vs Refresh/WithFactor: the refresh path reads no
//     factor table, so the two are the same.
//
// The clock moves 30 s per iteration, so every TOTP code is a new step.
func BenchmarkSecondFactor(b *testing.B) {
	ctx := context.Background()
	t := &testing.T{}
	clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	tick := func() { clock = clock.Add(30 * time.Second) }
	f := newFixture(t, func(c *Config) {
		c.Now, c.HashParams = func() time.Time { return clock }, password.Default
		c.Throttle = throttle.Config{PerIP: 1 << 20, FreeFailures: 1 << 20, AccountFailures: 1 << 20}
		c.SessionMaxAge, c.RefreshIdleTTL = 1<<20*time.Hour, 1<<19*time.Hour
		c.MaxSessionsPerUser = -1
	})
	for _, name := range []string{"plain", "mfa"} {
		if _, err := f.svc.Register(ctx, name, "password-"+name, meta); err != nil {
			b.Fatal(err)
		}
	}
	mfaTk, err := f.svc.Login(ctx, "mfa", "password-mfa", meta)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := f.svc.Authenticate(mfaTk.AccessToken)
	e, err := f.svc.EnrollTOTP(ctx, p, "")
	if err != nil {
		b.Fatal(err)
	}
	code := func() string { c, _ := factortest.TOTP(e.Secret, clock); return c }
	if _, _, err := f.svc.VerifyFactor(ctx, p, e.Factor.ID, code(), meta); err != nil {
		b.Fatal(err)
	}

	b.Run("Login/Password", func(b *testing.B) {
		for b.Loop() {
			tick()
			if _, err := f.svc.Login(ctx, "plain", "password-plain", meta); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Login/PasswordAndTOTP", func(b *testing.B) {
		for b.Loop() {
			tick()
			_, err := f.svc.Login(ctx, "mfa", "password-mfa", meta)
			var mr *MFARequiredError
			if !errors.As(err, &mr) {
				b.Fatal(err)
			}
			if _, err := f.svc.CompleteMFA(ctx, mr.Token, code(), nil, meta); err != nil {
				b.Fatal(err)
			}
		}
	})
	m, _ := f.svc.mfa.GetMFA(ctx, p.UserID)
	b.Run("TOTP", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tick()
			if _, ok := f.svc.checkTOTP(m.Factors[0], code(), clock); !ok {
				b.Fatal("code refused")
			}
		}
	})
	b.Run("WebAuthnAssertion", func(b *testing.B) {
		key := &factortest.Authenticator{Origin: "http://gatehouse.test", UV: true}
		opts, err := f.svc.WebAuthnRegisterOptions(ctx, p, "")
		if err != nil {
			b.Fatal(err)
		}
		att, _ := key.Register(mustJSON(b, opts))
		if _, _, err := f.svc.EnrollWebAuthn(ctx, p, att, meta); err != nil {
			b.Fatal(err)
		}
		cur, _ := f.svc.mfa.GetMFA(ctx, p.UserID)
		assertion, sd, err := f.svc.webauthn.BeginLogin(waUser{cur.User, cur.Factors})
		if err != nil {
			b.Fatal(err)
		}
		as, _ := key.Assert(mustJSON(b, assertion.Response))
		parsed, err := parseAssertion(as)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.svc.webauthn.ValidateLogin(waUser{cur.User, cur.Factors}, *sd, parsed); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct{ name, user string }{{"Refresh/NoFactor", "plain"}, {"Refresh/WithFactor", "mfa"}} {
		b.Run(tc.name, func(b *testing.B) {
			tick()
			tk, err := f.svc.Login(ctx, tc.user, "password-"+tc.user, meta)
			var mr *MFARequiredError
			if errors.As(err, &mr) {
				tk, err = f.svc.CompleteMFA(ctx, mr.Token, code(), nil, meta)
			}
			if err != nil {
				b.Fatal(err)
			}
			rt := tk.RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				next, err := f.svc.Refresh(ctx, rt, meta)
				if err != nil {
					b.Fatal(err)
				}
				rt = next.RefreshToken
			}
		})
	}
}

func mustJSON(b *testing.B, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
