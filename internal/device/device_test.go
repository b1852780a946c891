package device

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ ua, want, key string }{
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox 128 on Linux", "Firefox|Linux|Desktop"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Windows", "Chrome|Windows|Desktop"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari 17 on iOS", "Safari|iOS|Mobile"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Safari 17 on macOS", "Safari|macOS|Desktop"},
		{"curl/8.5.0", "", ""},
		{"", "", ""},
	} {
		got := Parse(c.ua)
		if got.String() != c.want || got.Key() != c.key {
			t.Errorf("%q: %q key %q, want %q key %q", c.ua, got.String(), got.Key(), c.want, c.key)
		}
	}
	// A browser update is the same device; another browser is not.
	a := Parse("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0")
	b := Parse("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	c := Parse("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	if a.Key() != b.Key() || a.Key() == c.Key() {
		t.Fatalf("keys: %q %q %q", a.Key(), b.Key(), c.Key())
	}
}

// Hostile headers: the output is from the parser's vocabulary, never the
// header's text.
func TestParseHostile(t *testing.T) {
	for _, ua := range []string{
		`<script>alert(1)</script> Firefox/128.0`,
		"Mozilla/5.0 (X11; Linux) Firefox/<img src=x onerror=alert(1)>",
		"\u202eMozilla/5.0 Chrome/1\u202c" + strings.Repeat("A", 100000),
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\x00\xff",
	} {
		s := Parse(ua).String()
		if strings.ContainsAny(s, "<>\"'&\u202e\u202c\x00") || len(s) > 64 {
			t.Errorf("%.60q → %q", ua, s)
		}
	}
}

func TestNetwork(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.7": "203.0.113.0/24", "203.0.113.200": "203.0.113.0/24", "::ffff:203.0.113.9": "203.0.113.0/24",
		"2001:db8:1:2::5": "2001:db8:1::/48", "nonsense": "", "": "",
	} {
		if got := Network(ip); got != want {
			t.Errorf("Network(%q) = %q, want %q", ip, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParse.
	f.Fuzz(func(t *testing.T, ua string) {
		i := Parse(ua)
		s := i.String()
		if strings.ContainsAny(s, "<>\"'&") || len(s) > 80 || (i.Key() == "") != (s == "") {
			t.Fatalf("%q → %+v %q", ua, i, s)
		}
	})
}
