package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// device is one browser profile (its own cookie jar, like another
// computer) with one tab on the web UI. It records what the page logs as
// errors: exceptions, console errors, CSP and Trusted Types violations.
type device struct {
	*tab
	mu     sync.Mutex
	errors []string
}

// newDevice opens a fresh browser context with the given user agent ("" for
// Chromium's own).
func (b *browser) newDevice(name, userAgent string) *device {
	b.t.Helper()
	d := &device{}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				msg = "console.error: " + strings.Join(parts, " ")
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				msg = "log: " + ev.Entry.Text
			}
		}
		if msg != "" {
			d.mu.Lock()
			d.errors = append(d.errors, msg)
			d.mu.Unlock()
		}
	}))
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open device %s: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		b.t.Fatal(err)
	}
	if userAgent != "" {
		if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: userAgent}); err != nil {
			b.t.Fatal(err)
		}
	}
	d.tab = &tab{ctx: ctx, t: b.t, name: name}
	return d
}

// visit loads a UI page and waits until the app has rendered it.
func (d *device) visit(url string) {
	d.t.Helper()
	d.run(chromedp.Navigate(url))
	d.waitFor(`window.gatehouseUI && window.gatehouseUI.ready === true && !document.querySelector("main p.muted:only-child")`, 10*time.Second)
}

// pageErrors fails the test if the page logged errors. Expected failures
// (a 401 answer is logged by Chromium as a failed resource load) are
// filtered by allow.
func (d *device) pageErrors(allow ...string) {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Chromium logs every 4xx answer as a failed resource load; the UI
	// probes for a session at start (401 without one).
	allow = append(allow, "status of 401")
next:
	for _, e := range d.errors {
		for _, a := range allow {
			if strings.Contains(e, a) {
				continue next
			}
		}
		d.t.Errorf("%s: page error: %s", d.name, e)
	}
	d.errors = nil
}

// call sends one protocol command to the device's tab.
func call[P any](d *device, cmd cdp.Command[P, cdp.Empty], params P) {
	d.t.Helper()
	if _, err := chromedp.Call(d.ctx, cmd, params); err != nil {
		d.t.Fatalf("%s: %s: %v", d.name, cmd.Method, err)
	}
}

// fill sets an input's value the way typing does (input events fire).
func (d *device) fill(sel, value string) {
	d.t.Helper()
	d.run(chromedp.WaitVisible(sel))
	d.eval(fmt.Sprintf(`document.querySelector(%q).value = ""`, sel), nil)
	d.run(chromedp.SendKeys(sel, value))
}

// fillLabel fills the input labelled label.
func (d *device) fillLabel(label, value string) {
	d.t.Helper()
	var id string
	d.waitFor(fmt.Sprintf(`[...document.querySelectorAll("label")].some((l) => l.textContent === %q)`, label), 5*time.Second)
	d.eval(fmt.Sprintf(`return [...document.querySelectorAll("label")].find((l) => l.textContent === %q).htmlFor`, label), &id)
	d.fill("#"+id, value)
}

// waitLocation waits for the tab's URL, across navigations to other
// origins (which swap the renderer under the tab).
func (d *device) waitLocation(want string, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(d.ctx, time.Second)
		got, _ = chromedp.Run(ctx, chromedp.Location())
		cancel()
		if got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("%s: location %q, want %q", d.name, got, want)
}

func (d *device) click(sel string) {
	d.t.Helper()
	d.run(chromedp.WaitVisible(sel), chromedp.Click(sel))
}

// clickText clicks the first button or link whose text is exactly text,
// within scope (a CSS selector).
func (d *device) clickText(scope, text string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`[...document.querySelectorAll(%q)].some((e) => e.textContent.trim() === %q && !e.disabled)`, scope+" button, "+scope+" a", text), 10*time.Second)
	d.eval(fmt.Sprintf(`[...document.querySelectorAll(%q)].find((e) => e.textContent.trim() === %q && !e.disabled).click()`, scope+" button, "+scope+" a", text), nil)
}

// text is the visible text of the first element matching sel.
func (d *device) text(sel string) string {
	d.t.Helper()
	var s string
	d.eval(fmt.Sprintf(`return document.querySelector(%q)?.innerText ?? ""`, sel), &s)
	return s
}

func (d *device) path() string {
	d.t.Helper()
	var s string
	d.eval(`return location.pathname + location.search`, &s)
	return s
}

// signIn signs in through the sign-in page.
func (d *device) signIn(base, user, pw string) {
	d.t.Helper()
	d.visit(base + "/login")
	d.fill("main input[autocomplete=username]", user)
	d.fill("main input[type=password]", pw)
	d.click("main form button[type=submit]")
	d.waitFor(`location.pathname !== "/login"`, 10*time.Second)
	d.waitFor(`window.gatehouseUI.gh.user !== null && document.querySelector("main h1")?.textContent !== "Sign in"`, 10*time.Second)
}

// viewport sets the window size and colour scheme.
func (d *device) viewport(width int64, dark bool) {
	d.t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	d.run(chromedp.EmulateViewport(width, 900))
	call(d, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
}

// overflowsX reports whether the page scrolls sideways.
func (d *device) overflowsX() bool {
	d.t.Helper()
	var wide bool
	d.eval(`return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`, &wide)
	return wide
}

// screenshot captures the whole page; saved under docs/screenshots/ when
// GATEHOUSE_SCREENSHOTS=1 (how the README's pictures are made).
func (d *device) screenshot(name string) []byte {
	d.t.Helper()
	var png []byte
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		d.t.Fatalf("screenshot %s: %v", name, err)
	}
	if os.Getenv("GATEHOUSE_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			d.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	return png
}

// decodeQR photographs the element sel as Chromium draws it and reads the
// QR code in it with a decoder written apart from the encoder (ZXing's).
func (d *device) decodeQR(sel string) string {
	d.t.Helper()
	d.run(chromedp.WaitVisible(sel))
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	// At 4× the device scale every module is whole pixels: a 1× capture
	// of some code versions blurs module edges enough to fail decoding.
	shot, err := chromedp.Run(ctx, chromedp.ScreenshotScale(sel, 4))
	if err != nil {
		d.t.Fatalf("QR screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		d.t.Fatalf("QR screenshot: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		d.t.Fatalf("QR bitmap: %v", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		d.t.Fatalf("no QR code readable in %s (%dx%d): %v", sel, img.Bounds().Dx(), img.Bounds().Dy(), err)
	}
	return res.GetText()
}

// axe runs axe-core (e2e/node_modules, installed by npm ci) on the page
// and returns its serious and critical violations. The page's CSP would
// refuse the injected script, so CSP is bypassed for the check only.
func (d *device) axe(source string) []string {
	d.t.Helper()
	var out []string
	call(d, cdppage.SetBypassCSP, cdppage.SetBypassCSPParams{Enabled: true})
	defer call(d, cdppage.SetBypassCSP, cdppage.SetBypassCSPParams{Enabled: false})
	d.eval(`if (!window.axe) { (0, eval)(`+jsString(source)+`); }
		const r = await axe.run(document, { resultTypes: ["violations"] });
		return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
			.map((v) => v.id + ": " + v.help + " [" + v.nodes.map((n) => n.target.join(" ")).join(", ") + "]");`, &out)
	return out
}

func jsString(s string) string {
	var b strings.Builder
	b.WriteString("`")
	for _, r := range s {
		switch r {
		case '`', '\\', '$':
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString("`")
	return b.String()
}

// axeSource reads axe-core, or skips (fails in CI).
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("axe-core is required (run npm ci in e2e/): %v", err)
		}
		t.Skip("axe-core not installed (cd e2e && npm ci): accessibility check skipped")
	}
	return string(b)
}
