package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseAuthMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"auth","access_token":"eyJhbGciOiJFZERTQSJ9.e30.sig"}`,
		`{"type":"auth","access_token":""}`,
		`{"type":"reauth","access_token":"x"}`,
		`{"type":"auth","access_token":"x","extra":1}`,
		`{"type":"auth","access_token":"x"}{}`,
		`{"type":"auth","access_token":"x"} `,
		`{"TYPE":"auth","access_token":"x"}`,
		`{"type":"auth","access_token":1}`,
		`[]`, `null`, ``, `{`, "\x00",
		`{"type":"auth","access_token":"` + strings.Repeat("a", 5000) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parseAuthMessage(data)
		if err != nil {
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			return
		}
		// Whatever is accepted is an auth message carrying that token.
		var m map[string]any
		if json.Unmarshal(data, &m) != nil || m["type"] != "auth" || m["access_token"] != tok || tok == "" || len(data) > firstMessageLimit {
			t.Fatalf("accepted %q as %q", data, tok)
		}
	})
}
