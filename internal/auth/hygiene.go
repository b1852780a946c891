package auth

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input hygiene: what the domain does to client-supplied strings before
// they are stored or logged.

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
// count is "1 session", "2 sessions": event details read as sentences.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (m Meta) clean() Meta {
	return Meta{IP: cleanText(m.IP, 64), UserAgent: cleanText(m.UserAgent, 512), DPoP: m.DPoP, ClientID: m.ClientID}
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
