package accesstoken

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzAppendJSON: AppendJSON writes exactly json.Marshal's bytes for any
// claims json.Marshal can encode, strings with escapes, HTML characters,
// line separators and invalid UTF-8 included.
func FuzzAppendJSON(f *testing.F) {
	f.Add("https://id.example.com", "api", "gatehouse", "user", "sid", "jti", int64(1_800_000_000_123_456), int64(5), "admin", "perm", "otp", "aal2", "jkt")
	f.Add("i", "", "", "\x00\"\\<>&\u2028\u2029\xff\t\n\r\b\f", "", "", int64(0), int64(0), "", "", "", "", "")
	f.Add("é漢字", "a", "b", "c", "d", "e", int64(-1_500_000), int64(-1), "r", "p", "m", "", "")
	f.Fuzz(func(t *testing.T, iss, aud, client, sub, sid, jti string, us, authTime int64, role, perm, amr, acr, jkt string) {
		c := Claims{
			Issuer: iss, ClientID: client, Subject: sub, SessionID: sid, ID: jti,
			IssuedAt: NumericDate{time.UnixMicro(us)}, ExpiresAt: NumericDate{time.UnixMicro(us + 300e6)},
			Role: role, AuthTime: authTime, ACR: acr,
		}
		if aud != "" {
			c.Audience = Audience{aud}
			if len(aud)%2 == 0 {
				c.Audience = append(c.Audience, aud+"2")
			}
		}
		if perm != "" {
			c.Permissions = []string{perm, perm + "x"}
		}
		if amr != "" {
			c.AMR = []string{amr}
		}
		if jkt != "" {
			c.Confirmation = &Confirmation{JKT: jkt}
		}
		got := c.AppendJSON(nil)
		if !json.Valid(got) {
			t.Fatalf("invalid JSON %q", got)
		}
		want, err := json.Marshal(c)
		if err != nil {
			return // before 1970: json.Marshal refuses its own MarshalJSON
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

func TestAppendJSONAllocates(t *testing.T) {
	c := Claims{Issuer: "https://id.example.com", Audience: Audience{"https://id.example.com"}, ClientID: "gatehouse",
		Subject: "u", SessionID: "s", ID: "j", IssuedAt: NumericDate{time.Now()}, ExpiresAt: NumericDate{time.Now()},
		Role: "user", Permissions: []string{"a", "b"}, AMR: []string{"pwd"}, ACR: "aal1"}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { c.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON allocates %v times into a large enough buffer", n)
	}
}
