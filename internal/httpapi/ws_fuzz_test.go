package httpapi

import (
	"encoding/json"
	"testing"
)

func FuzzParseAuthMessage(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseAuthMessage.
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := parseAuthMessage(data)
		if err != nil {
			if in != (wsIn{}) {
				t.Fatal("message returned with an error")
			}
			return
		}
		// Whatever is accepted is an auth message carrying that token (and
		// that proof, if any).
		var m map[string]any
		tok := in.AccessToken
		if json.Unmarshal(data, &m) != nil || m["type"] != "auth" || m["access_token"] != tok || tok == "" || len(data) > firstMessageLimit {
			t.Fatalf("accepted %q as %q", data, tok)
		}
		if proof, _ := m["dpop"].(string); proof != in.DPoP {
			t.Fatalf("accepted %q with proof %q", data, in.DPoP)
		}
	})
}
