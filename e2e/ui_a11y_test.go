package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Every page, at 1280 and 360 px, in the light and the dark scheme: axe-core
// finds no serious or critical violation, nothing scrolls sideways at 360
// px, and each page is photographed (docs/screenshots/, with
// GATEHOUSE_SCREENSHOTS=1).
func TestUIAccessibilityAndLayout(t *testing.T) {
	src := axeSource(t)
	gh := uiServer(t, ghOptions{reauthAge: time.Second})
	b := startBrowser(t)
	phone := b.newDevice("phone", uaIPhone)
	phone.signIn(gh.URL, "ann", "pw-ann-long")
	ann := b.newDevice("ann", uaFirefox)
	ann.signIn(gh.URL, "ann", "pw-ann-long")
	admin := b.newDevice("admin", uaChrome)
	admin.signIn(gh.URL, "root", "pw-root-long")
	visitor := b.newDevice("visitor", uaFirefox)
	annID := gh.user(t, "ann")

	type view struct {
		name  string
		d     *device
		path  string
		ready string // a JavaScript condition
		then  func(d *device)
	}
	stepUpPrompt := func(d *device) {
		time.Sleep(1100 * time.Millisecond) // older than --reauth-max-age
		d.clickText("main", "Sign out all other devices")
		d.confirm("Sign out others")
		d.waitFor(`document.getElementById("dialog-title")?.textContent === "Confirm it’s you"`, 5*time.Second)
	}
	views := []view{
		{"sign-in", visitor, "/login", `document.querySelector("main form")`, nil},
		{"signed-out", visitor, "/login?reason=reused", `document.querySelector("main .notice")`, nil},
		{"register", visitor, "/register", `document.querySelector("main form")`, nil},
		{"devices", ann, "/account", `document.querySelectorAll("[data-session]").length === 2`, nil},
		{"activity", ann, "/account/activity", `document.querySelector("[data-event]")`, nil},
		{"password", ann, "/account/password", `document.querySelector("main form")`, nil},
		{"delete-account", ann, "/account/delete", `document.querySelector("main .danger")`, nil},
		{"step-up", ann, "/account", `document.querySelectorAll("[data-session]").length === 2`, stepUpPrompt},
		{"admin-users", admin, "/admin", `document.querySelectorAll("[data-user]").length === 2`, nil},
		{"admin-user", admin, "/admin/users/" + annID, `document.querySelectorAll("[data-session]").length === 2`, nil},
		{"admin-events", admin, "/admin/events", `document.querySelector("[data-event]")`, nil},
		{"admin-emergency", admin, "/admin/emergency", `document.querySelector("main .danger")`, nil},
	}
	for _, width := range []int64{1280, 360} {
		for _, v := range views {
			where := fmt.Sprintf("%s at %d px", v.name, width)
			v.d.viewport(width, false)
			v.d.visit(gh.URL + v.path)
			v.d.waitFor("!!("+v.ready+")", 5*time.Second)
			if v.then != nil {
				v.then(v.d)
			}
			var junk bool
			v.d.eval(`return /\b(null|undefined|NaN)\b|\[object /.test(document.body.innerText)`, &junk)
			if junk {
				t.Errorf("%s: the page shows a JavaScript value as text: %s", where, v.d.text("body"))
			}
			if width == 360 && v.d.overflowsX() {
				t.Errorf("%s: the page scrolls sideways", where)
			}
			for _, dark := range []bool{false, true} {
				v.d.viewport(width, dark)
				for _, violation := range v.d.axe(src) {
					t.Errorf("%s (dark %v): axe: %s", where, dark, violation)
				}
				if dark && (v.name == "devices" || v.name == "admin-events") {
					v.d.screenshot(fmt.Sprintf("%s-%d-dark", v.name, width))
				}
			}
			v.d.viewport(width, false)
			v.d.screenshot(fmt.Sprintf("%s-%d", v.name, width))
		}
	}
	for _, d := range []*device{phone, ann, admin, visitor} {
		d.pageErrors()
	}
}

// The UI works from the keyboard alone, with a visible focus.
func TestUIKeyboard(t *testing.T) {
	gh := uiServer(t, ghOptions{})
	b := startBrowser(t)
	phone := b.newDevice("phone", uaIPhone)
	phone.signIn(gh.URL, "ann", "pw-ann-long")
	d := b.newDevice("keyboard", uaFirefox)
	d.visit(gh.URL + "/login")

	type focus struct {
		Label   string `json:"label"`
		Outline string `json:"outline"`
	}
	focused := func() focus {
		var f focus
		d.eval(`const e = document.activeElement; const id = e.id && document.querySelector("label[for='" + e.id + "']");
			return { label: (id ? id.textContent : e.textContent || e.getAttribute("aria-label") || "").trim(),
				outline: getComputedStyle(e).outlineStyle }`, &f)
		return f
	}
	// The sign-in page starts in the username field; Shift+Tab walks back
	// through the header to the skip link, each stop with a visible focus
	// ring, and Tab walks forward again.
	if f := focused(); f.Label != "Username" {
		t.Fatalf("focus at load: %+v", f)
	}
	backTab := chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))
	for i := 0; focused().Label != "Skip to content"; i++ {
		if i > 8 {
			t.Fatalf("Shift+Tab never reaches the skip link (at %+v)", focused())
		}
		d.run(backTab)
		if f := focused(); f.Outline == "none" {
			t.Fatalf("no visible focus on %q", f.Label)
		}
	}
	for i := 0; focused().Label != "Username"; i++ {
		if i > 8 {
			t.Fatalf("Tab never reaches the username field (at %+v)", focused())
		}
		d.run(chromedp.KeyEvent(kb.Tab))
	}
	d.run(chromedp.KeyEvent("ann"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("pw-ann-long"), chromedp.KeyEvent(kb.Enter))
	d.waitFor(`location.pathname === "/account" && document.querySelectorAll("[data-session]").length === 2`, 10*time.Second)
	// The new page's heading has the focus, so a screen reader announces it.
	if f := focused(); f.Label != "Your account" {
		t.Fatalf("focus after navigating: %+v", f)
	}

	// End the other session with the keyboard: Tab to its button, Enter,
	// and the dialog takes the focus; Escape cancels and nothing changes.
	for i := 0; !strings.HasPrefix(focused().Label, "End session"); i++ {
		if i > 20 {
			t.Fatalf("Tab never reaches an End session button (at %+v)", focused())
		}
		d.run(chromedp.KeyEvent(kb.Tab))
	}
	d.run(chromedp.KeyEvent(kb.Enter))
	d.waitFor(`document.getElementById("dialog").open && document.getElementById("dialog").contains(document.activeElement)`, 5*time.Second)
	d.run(chromedp.KeyEvent(kb.Escape))
	d.waitFor(`!document.getElementById("dialog").open`, 5*time.Second)
	if n := len(mustSessions(t, gh, "ann")); n != 2 {
		t.Fatalf("Escape ended a session: %d left", n)
	}
	// Again, confirming with Enter this time.
	d.run(chromedp.KeyEvent(kb.Enter))
	d.waitFor(`document.getElementById("dialog").open`, 5*time.Second)
	d.run(chromedp.KeyEvent(kb.Enter))
	phone.signedOut("revoked", time.Now())
	d.pageErrors()
}

// mustSessions lists a user's active sessions from the domain.
func mustSessions(t *testing.T, gh *gatehouse, name string) []string {
	t.Helper()
	list, err := gh.svc.UserSessions(context.Background(), gh.user(t, name))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids
}
