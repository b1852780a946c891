// Package device turns what a session was opened from — a User-Agent
// header and an IP address — into what people read ("Firefox 128 on
// Linux") and what the server compares to tell a known device or network
// from a new one.
package device

import (
	"net/netip"
	"strings"
	"sync"

	"github.com/medama-io/go-useragent"
)

// parser is built once (a trie of known user-agent tokens) and is safe for
// concurrent use.
var parser = sync.OnceValue(useragent.NewParser)

// Info is a parsed user agent. Every field comes from the parser's fixed
// vocabulary or is digits, never from the header's free text, so it is
// safe to show anywhere; empty when not recognised.
type Info struct {
	Browser string // "Firefox"
	Version string // major version, "128"
	OS      string // "Linux"
	Kind    string // "Desktop", "Mobile", "Tablet", "TV", "Bot"
}

// maxUA bounds the work on hostile headers; real user agents are far
// shorter, and the store keeps at most 512 bytes of one anyway.
const maxUA = 512

// Parse reads a User-Agent header.
func Parse(ua string) Info {
	if ua == "" {
		return Info{}
	}
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	a := parser().Parse(ua)
	i := Info{Browser: string(a.Browser()), OS: string(a.OS()), Kind: string(a.Device())}
	if i.Browser != "" {
		i.Version = digits(a.BrowserVersionMajor())
	}
	if i.OS == "MacOS" {
		i.OS = "macOS"
	}
	return i
}

// String is the readable name: "Firefox 128 on Linux", "Chrome on
// Android", "Safari", "Windows device", or "" when nothing is recognised.
func (i Info) String() string {
	browser := i.Browser
	if browser != "" && i.Version != "" {
		browser += " " + i.Version
	}
	switch {
	case browser != "" && i.OS != "":
		return browser + " on " + i.OS
	case browser != "":
		return browser
	case i.OS != "":
		return i.OS + " device"
	}
	return ""
}

// Key identifies the device across browser updates: browser, OS and kind,
// without the version. "" when nothing is recognised.
func (i Info) Key() string {
	if i.Browser == "" && i.OS == "" {
		return ""
	}
	return i.Browser + "|" + i.OS + "|" + i.Kind
}

// Network is the address block an IP belongs to for "have we seen this
// network": the /24 of an IPv4 address, the /48 of an IPv6 one (a site;
// the host part of IPv6 changes often by design). "" for a non-address.
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

func digits(s string) string {
	if len(s) > 6 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return ""
	}
	return s
}
