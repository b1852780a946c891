package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/factortest"
)

// gatehouse.js in Chromium on another origin: enrolling TOTP, a login that
// stops at the second factor (no token until the code), a wrong code that
// can be retried, the right one, a step-up with password and recovery
// code; no token readable by the page at any point.
func TestBrowserSecondFactor(t *testing.T) {
	s := startSPA(t, accessTTL)
	tab := s.b.open("app", s.app)
	var user map[string]any
	tab.eval(`await gh.register("ann", "correct horse battery"); return await gh.login("ann", "correct horse battery")`, &user)
	if user["mfa"] != false {
		t.Fatalf("login: %v", user)
	}
	var e map[string]any
	tab.eval(`return await gh.enrollTotp("phone")`, &e)
	secret := e["secret"].(string)
	if !strings.HasPrefix(e["otpauthUri"].(string), "otpauth://totp/") {
		t.Fatalf("enrolTotp: %v", e)
	}
	code := func(at time.Time) string {
		c, err := factortest.TOTP(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var v map[string]any
	tab.eval(fmt.Sprintf(`return await gh.verifyFactor(%q, %q)`, e["factor"].(map[string]any)["id"], code(time.Now())), &v)
	codes, _ := v["recoveryCodes"].([]any)
	if len(codes) != 10 || v["factor"].(map[string]any)["active"] != true {
		t.Fatalf("verifyFactor: %v", v)
	}
	tab.eval(`await gh.logout(); return null`, nil)

	var challenge map[string]any
	tab.eval(`return await gh.login("ann", "correct horse battery")`, &challenge)
	if challenge["mfaRequired"] != true || len(challenge["factors"].([]any)) != 1 {
		t.Fatalf("login with a factor: %v", challenge)
	}
	var state map[string]any
	tab.eval(`return { user: gh.user, token: !!gh._token }`, &state)
	if state["user"] != nil || state["token"] != false {
		t.Fatalf("signed in before the second factor: %v", state)
	}
	if err := tab.try(`return await gh.verifyMfa("000000")`, nil); err == nil || !strings.Contains(err.Error(), "invalid_mfa_code") {
		t.Fatalf("a wrong code: %v", err)
	}
	tab.eval(fmt.Sprintf(`return await gh.verifyMfa(%q)`, code(time.Now().Add(30*time.Second))), &user)
	if user["username"] != "ann" || user["mfa"] != true {
		t.Fatalf("verifyMfa: %v", user)
	}
	tab.assertNoTokenReadable()
	var acr string
	tab.eval(`return JSON.parse(atob(gh._token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).acr`, &acr)
	if acr != "aal2" {
		t.Fatalf("acr after the second factor: %q", acr)
	}
	// Step-up with the password and a recovery code; then the gated route.
	tab.eval(fmt.Sprintf(`await gh.reauthenticate({ password: "correct horse battery", code: %q }); return null`, codes[0]), nil)
	var left map[string]any
	tab.eval(`return await gh.factors()`, &left)
	if left["recoveryCodesLeft"] != float64(9) {
		t.Fatalf("factors: %v", left)
	}
	tab.eval(`await gh.logoutEverywhere(); return null`, nil)
	if n := s.gh.events(t, "mfa_succeeded"); n < 2 {
		t.Fatalf("%d mfa_succeeded events", n)
	}
}
