package auth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzPrepareUsername(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzPrepareUsername.
	f.Fuzz(func(t *testing.T, name string) {
		key, err := PrepareUsername(name)
		if err != nil {
			if key != "" {
				t.Fatal("key with an error")
			}
			return
		}
		// Storable everywhere, bounded, and stable: the key is its own key,
		// so two spellings of one name always meet at one account.
		if !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 || utf8.RuneCountInString(key) > maxUsernameRunes {
			t.Fatalf("key %q of %q is not storable", key, name)
		}
		again, err := PrepareUsername(key)
		if err != nil || again != key {
			t.Fatalf("key %q of %q prepares to %q, %v", key, name, again, err)
		}
		if strings.ContainsAny(key, " \t\r\n") {
			t.Fatalf("key %q has spaces", key)
		}
	})
}

func FuzzCleanText(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzCleanText.
	f.Fuzz(func(t *testing.T, s string) {
		out := cleanText(s, 512)
		if !utf8.ValidString(out) || strings.IndexByte(out, 0) >= 0 || len(out) > 512 {
			t.Fatalf("cleanText(%q) = %q", s, out)
		}
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= 512 && out != s {
			t.Fatalf("clean input changed: %q -> %q", s, out)
		}
	})
}
