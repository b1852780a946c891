package throttle

import (
	"net/netip"
	"testing"
)

// FuzzAddressKey: client addresses come from sockets and, behind trusted
// proxies, from X-Forwarded-For. Whatever the spelling, the key is stable
// (a key is its own key), an address's key is one of its /64 (IPv6) or
// itself (IPv4), and two spellings of one address get one key.
func FuzzAddressKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "fe80::1%eth0", "2001:db8::/64", "", "garbage", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := AddressKey(s)
		if AddressKey(k) != k {
			t.Fatalf("AddressKey(%q) = %q, whose key is %q", s, k, AddressKey(k))
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		a = a.WithZone("").Unmap()
		if a.Is4() {
			if k != a.String() {
				t.Fatalf("IPv4 %q keyed %q", s, k)
			}
			return
		}
		p, err := netip.ParsePrefix(k)
		if err != nil || p.Bits() != 64 || !p.Contains(a) {
			t.Fatalf("IPv6 %q keyed %q, not its /64", s, k)
		}
		if AddressKey(a.StringExpanded()) != k {
			t.Fatalf("%q and its expanded spelling get different keys", s)
		}
	})
}
