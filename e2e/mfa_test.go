package e2e

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

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

// Passkeys in Chromium with the DevTools virtual authenticator (a platform
// authenticator with resident keys and user verification): registration,
// a login's second step, sign-in without a password, a step-up, a response
// without user verification refused, and a cloned authenticator (its
// signature counter set back) refused. Origins are localhost: WebAuthn
// refuses IP addresses as relying parties.
func TestBrowserPasskeys(t *testing.T) {
	b := startBrowser(t)
	ghLn, appLn := reserve(t), reserve(t)
	host := func(ln net.Listener) string { return "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }
	app := host(appLn)
	gh := startGatehouse(t, ghLn, ghOptions{origins: []string{app}, accessTTL: accessTTL, issuer: host(ghLn)})
	serveOn(t, appLn, page(appPage(host(ghLn))))
	tab := b.open("app", app)
	if _, err := chromedp.Call(tab.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn domain: %v", err)
	}
	res, err := chromedp.Call(tab.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	authn := res.AuthenticatorID
	claims := func() map[string]any {
		var c map[string]any
		tab.eval(`return JSON.parse(atob(gh._token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")))`, &c)
		return c
	}

	var reg map[string]any
	tab.eval(`await gh.register("ann", "correct horse battery"); await gh.login("ann", "correct horse battery"); return await gh.enrollPasskey("laptop")`, &reg)
	if codes, _ := reg["recoveryCodes"].([]any); len(codes) != 10 || reg["factor"].(map[string]any)["type"] != "webauthn" {
		t.Fatalf("enrollPasskey: %v", reg)
	}
	// Password, then the passkey.
	var challenge map[string]any
	tab.eval(`await gh.logout(); return await gh.login("ann", "correct horse battery")`, &challenge)
	if challenge["mfaRequired"] != true {
		t.Fatalf("login: %v", challenge)
	}
	tab.eval(`return await gh.verifyMfaWithPasskey()`, nil)
	if c := claims(); c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[pwd hwk user mfa]" {
		t.Fatalf("password and passkey: %v %v", c["acr"], c["amr"])
	}
	// No password at all.
	tab.eval(`await gh.logout(); return await gh.loginWithPasskey()`, nil)
	if c := claims(); c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[hwk user mfa]" {
		t.Fatalf("passkey sign-in: %v %v", c["acr"], c["amr"])
	}
	tab.eval(`await gh.reauthenticate({ passkey: true }); return null`, nil)
	tab.assertNoTokenReadable()

	// The authenticator answers without user verification: not a sign-in.
	bad := true
	if _, err := chromedp.Call(tab.ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: authn, IsBadUV: &bad}); err != nil {
		t.Fatal(err)
	}
	if err := tab.try(`await gh.logout(); return await gh.loginWithPasskey()`, nil); err == nil || !strings.Contains(err.Error(), "invalid_credentials") {
		t.Fatalf("passkey sign-in without user verification: %v", err)
	}
	if _, err := chromedp.Call(tab.ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: authn}); err != nil {
		t.Fatal(err)
	}
	// A clone: the same key with its counter set back.
	creds, err := chromedp.Call(tab.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authn})
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("credentials: %v %v", creds, err)
	}
	c := *creds.Credentials[0]
	if c.SignCount < 2 {
		t.Fatalf("sign count %v after three assertions", c.SignCount)
	}
	c.SignCount = 1
	if _, err := chromedp.Call(tab.ctx, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{AuthenticatorID: authn, CredentialID: c.CredentialID}); err != nil {
		t.Fatal(err)
	}
	// Added by hand: this Chromium refuses the CMTG fields the generated
	// params always send.
	addCredential := cdp.Command[map[string]any, cdp.Empty]{Method: webauthn.CommandAddCredential}
	if _, err := chromedp.Call(tab.ctx, addCredential, map[string]any{"authenticatorId": authn, "credential": map[string]any{
		"credentialId": c.CredentialID, "isResidentCredential": c.IsResidentCredential, "rpId": c.RpID,
		"privateKey": c.PrivateKey, "userHandle": c.UserHandle, "signCount": c.SignCount,
		"backupEligibility": c.BackupEligibility, "backupState": c.BackupState,
	}}); err != nil {
		t.Fatal(err)
	}
	if err := tab.try(`return await gh.loginWithPasskey()`, nil); err == nil || !strings.Contains(err.Error(), "invalid_credentials") {
		t.Fatalf("a cloned authenticator signed in: %v", err)
	}
	if n := gh.events(t, "webauthn_clone_suspected"); n != 1 {
		t.Fatalf("%d webauthn_clone_suspected events", n)
	}
}

// The web UI's two-factor pages: enrolling an authenticator app (the key
// shown, the first code, the recovery codes once), signing in with the
// code, and the admin's reset; axe-clean, with screenshots.
func TestUITwoFactor(t *testing.T) {
	src := axeSource(t)
	gh := uiServer(t, ghOptions{})
	b := startBrowser(t)
	ann := b.newDevice("ann", uaFirefox)
	ann.signIn(gh.URL, "ann", "pw-ann-long")
	// One device: no "sign out the others" button with nothing to act on.
	ann.visit(gh.URL + "/account")
	ann.waitFor(`document.querySelectorAll("[data-session]").length === 1 && document.getElementById("end-others").hidden`, 5*time.Second)
	ann.visit(gh.URL + "/account/security")
	ann.waitFor(`document.querySelector("main h2")?.textContent === "Two-factor sign-in"`, 5*time.Second)
	ann.clickText("main", "Add an authenticator app")
	ann.waitFor(`!!document.querySelector("main code.secret")`, 5*time.Second)
	secret := strings.ReplaceAll(ann.text("main code.secret"), " ", "")
	// The QR code says what the link says, and the link holds the key shown.
	var link string
	ann.eval(`return document.querySelector("main a[href^='otpauth:']").getAttribute("href")`, &link)
	if got := ann.decodeQR("main svg.qr"); got != link {
		t.Errorf("QR code reads %q, the link is %q", got, link)
	}
	if u, err := url.Parse(link); err != nil || u.Query().Get("secret") != secret || u.Query().Get("issuer") == "" || !strings.HasSuffix(u.Path, ":ann") {
		t.Errorf("otpauth link %q does not hold key %q (%v)", link, secret, err)
	}
	for _, v := range ann.axe(src) {
		t.Errorf("authenticator enrolment: axe: %s", v)
	}
	ann.viewport(360, true)
	if ann.overflowsX() {
		t.Error("enrolment with its QR code overflows 360 px")
	}
	if got := ann.decodeQR("main svg.qr"); got != link { // dark mode keeps dark on light
		t.Errorf("QR code in dark mode reads %q", got)
	}
	ann.viewport(1280, false)
	ann.screenshot("two-factor-enrol-1280")
	code := func(at time.Time) string {
		c, err := factortest.TOTP(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ann.fill("main input[autocomplete=one-time-code]", code(time.Now()))
	ann.clickText("main", "Turn on")
	ann.waitFor(`document.querySelectorAll("main .codes li").length === 10`, 5*time.Second)
	codes := strings.Fields(ann.text("main .codes"))
	ann.waitFor(`document.querySelector("main .muted")?.textContent !== "" && [...document.querySelectorAll("main p.muted")].some((p) => p.textContent.startsWith("On: 1 factor"))`, 5*time.Second)
	for _, width := range []int64{1280, 360} {
		ann.viewport(width, false)
		for _, v := range ann.axe(src) {
			t.Errorf("two-factor page at %d px: axe: %s", width, v)
		}
		ann.screenshot(fmt.Sprintf("two-factor-%d", width))
	}
	ann.viewport(1280, false)

	// Sign out; the password alone now leads to the second step.
	ann.eval(`await window.gatehouseUI.gh.logout(); return null`, nil)
	ann.visit(gh.URL + "/login")
	ann.fill("main input[autocomplete=username]", "ann")
	ann.fill("main input[type=password]", "pw-ann-long")
	ann.click("main form button[type=submit]")
	ann.waitFor(`document.querySelector("main h1")?.textContent === "Two-factor sign-in" && window.gatehouseUI.gh.user === null`, 5*time.Second)
	for _, v := range ann.axe(src) {
		t.Errorf("second-step page: axe: %s", v)
	}
	ann.screenshot("two-factor-sign-in-1280")
	ann.fill("main input[autocomplete=one-time-code]", "000000")
	ann.click("main form button[type=submit]")
	ann.waitFor(`document.querySelector("main .notice.error")?.textContent.startsWith("That code was not accepted")`, 5*time.Second)
	ann.fill("main input[autocomplete=one-time-code]", codes[0]) // a recovery code
	ann.click("main form button[type=submit]")
	ann.waitFor(`window.gatehouseUI.gh.user?.mfa === true && location.pathname === "/account"`, 5*time.Second)

	// The admin sees it on and resets it: ann is signed out.
	admin := b.newDevice("admin", uaChrome)
	admin.signIn(gh.URL, "root", "pw-root-long")
	admin.visit(gh.URL + "/admin/users/" + gh.user(t, "ann"))
	admin.waitFor(`document.querySelector("main dl").textContent.includes("Two-factorOn")`, 5*time.Second)
	admin.clickText("main", "Reset two-factor")
	admin.confirm("Reset two-factor")
	start := time.Now()
	admin.statusIs("Two-factor sign-in was reset.")
	ann.signedOut("revoked", start)
	admin.waitFor(`document.querySelector("main dl").textContent.includes("Two-factorOff")`, 5*time.Second)
	// Nothing left to reset, and no session to revoke: those buttons go.
	admin.waitFor(`![...document.querySelectorAll("main button")].some((b) => ["Reset two-factor", "Revoke all sessions"].includes(b.textContent) && b.offsetParent !== null)`, 5*time.Second)
	// 403: the password step answers mfa_required; 401: the wrong code and the reset.
	ann.pageErrors("401", "403")
	admin.pageErrors()
}
