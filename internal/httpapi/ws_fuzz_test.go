package httpapi

import (
	"encoding/json"
	"testing"
)

func FuzzParseAuthMessage(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseAuthMessage.
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
