package auth

import (
	"context"
	"testing"
)

// Each sign-in's event says what is new about it compared with the
// account's earlier sign-ins; another account's history does not count.
func testLoginNovelty(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const (
		firefox127 = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
		firefox128 = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
		iphone     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	)
	for _, name := range []string{"ann", "bob"} {
		if _, err := f.svc.Register(ctx, name, "password-"+name, meta); err != nil {
			t.Fatal(err)
		}
	}
	// bob's sign-in from the iPhone network makes nothing known for ann.
	if _, err := f.svc.Login(ctx, "bob", "password-bob", Meta{IP: "198.51.100.9", UserAgent: iphone}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		m    Meta
		want string
	}{
		{Meta{IP: "203.0.113.7", UserAgent: firefox127}, DetailFirstSignIn},
		{Meta{IP: "203.0.113.99", UserAgent: firefox128}, ""},            // same /24, a browser update
		{Meta{IP: "198.51.100.9", UserAgent: firefox128}, "new network"}, // bob's network, not ann's
		{Meta{IP: "203.0.113.8", UserAgent: iphone}, "new device"},
		{Meta{IP: "2001:db8:5::1", UserAgent: "curl/8.5.0"}, "new device, new network"},
		{Meta{IP: "2001:db8:5:9::2", UserAgent: "curl/8.5.0"}, ""}, // the same /48 and the same unrecognised agent
		{Meta{IP: "2001:db8:5::1", UserAgent: "curl/8.6.0"}, "new device"},
	} {
		if _, err := f.svc.Login(ctx, "ann", "password-ann", c.m); err != nil {
			t.Fatal(err)
		}
		list, _, err := f.svc.Events(ctx, EventQuery{UserID: f.userID(t, "ann"), Type: EventLoginSucceeded, Limit: 1})
		if err != nil || len(list) != 1 {
			t.Fatal(err)
		}
		if list[0].Detail != c.want {
			t.Errorf("sign-in %d (%s, %.30s): detail %q, want %q", i, c.m.IP, c.m.UserAgent, list[0].Detail, c.want)
		}
	}
}

func (f *fixture) userID(t *testing.T, name string) string {
	t.Helper()
	u, err := f.svc.FindUser(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// BenchmarkLoginNovelty is the cost a successful login pays to compare
// itself with a full window of earlier sign-ins (one indexed query and a
// user-agent parse per row); set it against BenchmarkLogin's argon2id.
func BenchmarkLoginNovelty(b *testing.B) {
	f := newFixture(&testing.T{}, nil)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "ann", "password-ann", meta); err != nil {
		b.Fatal(err)
	}
	id := f.userID(&testing.T{}, "ann")
	m := Meta{IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
	for range noveltyWindow {
		f.svc.event(ctx, EventLoginSucceeded, m, id, "", "")
	}
	other := Meta{IP: "198.51.100.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"}
	b.ResetTimer()
	for b.Loop() {
		if d := f.svc.loginNovelty(ctx, id, other); d != "new device, new network" {
			b.Fatal(d)
		}
	}
}
