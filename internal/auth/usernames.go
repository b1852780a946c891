package auth

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// Usernames follow the PRECIS UsernameCaseMapped profile (RFC 8265): letters
// and digits of any script and the ASCII symbols it allows, width- and
// case-mapped, NFC, no spaces or controls, the bidi rule. Two names equal
// after preparation are one account. The checks live here, in the domain,
// so every backend and the CLI refuse the same names, and nothing a
// database would reject (a NUL byte, invalid UTF-8) ever reaches it.

const maxUsernameRunes = 64

// PrepareUsername checks a username and returns its unique key (the form
// lookups compare). The name itself is kept as registered.
func PrepareUsername(name string) (key string, err error) {
	if name == "" || len(name) > 4*maxUsernameRunes || !utf8.ValidString(name) {
		return "", errBadUsername
	}
	key, err = precis.UsernameCaseMapped.String(name)
	if err != nil || key == "" || utf8.RuneCountInString(key) > maxUsernameRunes {
		return "", errBadUsername
	}
	if mixesConfusableScripts(key) {
		return "", fmt.Errorf("%w: username mixes Latin, Greek and Cyrillic letters", ErrInvalidRequest)
	}
	return key, nil
}

var errBadUsername = fmt.Errorf("%w: username must be 1-64 letters, digits or symbols, without spaces or control characters", ErrInvalidRequest)

// mixesConfusableScripts reports letters from more than one of Latin, Greek
// and Cyrillic: "pаypal" with a Cyrillic а looks like "paypal".
func mixesConfusableScripts(s string) bool {
	var latin, greek, cyrillic bool
	for _, r := range s {
		switch {
		case !unicode.IsLetter(r):
		case unicode.Is(unicode.Latin, r):
			latin = true
		case unicode.Is(unicode.Greek, r):
			greek = true
		case unicode.Is(unicode.Cyrillic, r):
			cyrillic = true
		}
	}
	n := 0
	for _, b := range []bool{latin, greek, cyrillic} {
		if b {
			n++
		}
	}
	return n > 1
}

// cleanText makes a client-supplied string storable on every backend:
// valid UTF-8 (invalid bytes become U+FFFD), no NUL (PostgreSQL refuses it
// in text), at most max bytes, cut on a character boundary.
func cleanText(s string, max int) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= max {
		return s // the common case: no copy
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// clean is m made storable.
func (m Meta) clean() Meta {
	return Meta{IP: cleanText(m.IP, 64), UserAgent: cleanText(m.UserAgent, 512)}
}

// validID reports whether id could be one of ours (base64url, not too
// long): a client-supplied id that is not is simply not found, without a
// database round trip that a hostile byte could turn into an error.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Permissions (API.md "Permissions"): 1-64 characters of a-z 0-9 : . _ -,
// at most 64 per user, and at most MaxPermissionBytes in all.
const maxPermissions = 64

// MaxPermissionBytes bounds the total length of a user's permissions, so
// that the largest access token the server can issue works on every
// transport: the server's and guard's 4096-byte token limit, a browser's
// 4096 bytes per cookie (the access cookie with its attributes), and the
// 4096-byte first message of a WebSocket. 64 permissions of 64 characters
// made a 6.2 KB token that all three refused. With an issuer of at most
// MaxIssuerLength, an EdDSA token stays under 3,900 bytes.
const MaxPermissionBytes = 2048

// MaxIssuerLength bounds --issuer for the same reason.
const MaxIssuerLength = 256

// NormalizePermissions validates a permission list and returns it sorted
// without duplicates.
func NormalizePermissions(in []string) ([]string, error) {
	if len(in) > maxPermissions {
		return nil, fmt.Errorf("%w: at most %d permissions", ErrInvalidRequest, maxPermissions)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, p := range in {
		if !validPermission(p) {
			return nil, fmt.Errorf("%w: permission %q must be 1-64 characters of a-z 0-9 : . _ -", ErrInvalidRequest, truncateForError(p))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	total := 0
	for _, p := range out {
		total += len(p)
	}
	if total > MaxPermissionBytes {
		return nil, fmt.Errorf("%w: permissions may total at most %d bytes (these are %d): access tokens must fit a cookie and a header", ErrInvalidRequest, MaxPermissionBytes, total)
	}
	slices.Sort(out)
	return out, nil
}

func validPermission(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// truncateForError keeps a bad value short and printable in an error.
func truncateForError(s string) string {
	s = cleanText(s, 32)
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
