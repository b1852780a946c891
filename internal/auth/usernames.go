package auth

import (
	"fmt"
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
