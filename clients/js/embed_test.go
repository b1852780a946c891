package gatehousejs

import (
	"bytes"
	"compress/gzip"
	"regexp"
	"testing"
)

// The client's budget (docs/PERFORMANCE.md): under 8 KB minified and
// gzipped. The unminified source gzipped is a stricter bound that needs no
// minifier in the test.
func TestClientSize(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(Source)
	zw.Close()
	t.Logf("gatehouse.js: %d bytes, %d gzipped", len(Source), buf.Len())
	if buf.Len() >= 8<<10 {
		t.Fatalf("gatehouse.js is %d bytes gzipped, over the 8 KB budget", buf.Len())
	}
}

// No dependencies, and no token ever goes where page scripts (or an XSS)
// could read it later.
func TestClientKeepsTokensInMemory(t *testing.T) {
	code := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAll(Source, nil) // comments may name them
	for _, bad := range []string{
		`(?m)^\s*import\s`, `\bimport\(`, `\brequire\(`, // dependencies
		`localStorage`, `sessionStorage`, `indexedDB`, `document\.cookie`, // storage
		`\?access_token=`, `[?&]token=`, // tokens in URLs
	} {
		if regexp.MustCompile(bad).Match(code) {
			t.Errorf("gatehouse.js matches %s", bad)
		}
	}
}
