package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

const (
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// uiServer is Gatehouse with the web UI, an admin "root" and a user "ann".
func uiServer(t *testing.T, o ghOptions) *gatehouse {
	t.Helper()
	o.ui = true
	gh := startGatehouse(t, reserve(t), o)
	ctx := context.Background()
	if _, err := gh.svc.CreateUser(ctx, "root", "pw-root-long", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.svc.CreateUser(ctx, "ann", "pw-ann-long", "user"); err != nil {
		t.Fatal(err)
	}
	return gh
}

func TestUISmoke(t *testing.T) {
	gh := uiServer(t, ghOptions{})
	b := startBrowser(t)
	laptop := b.newDevice("laptop", uaFirefox)
	laptop.signIn(gh.URL, "ann", "pw-ann-long")
	if p := laptop.path(); p != "/account" {
		t.Fatalf("after sign-in: %s", p)
	}
	laptop.waitFor(`document.querySelectorAll("[data-session]").length === 1`, 5*time.Second)
	if s := laptop.text("main"); !strings.Contains(s, "Firefox 128 on Linux") || !strings.Contains(s, "This device") {
		t.Fatalf("devices: %s", s)
	}
	laptop.pageErrors("401")
	_ = time.Second
}
