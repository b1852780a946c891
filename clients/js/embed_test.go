package gatehousejs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The client's budget (docs/PERFORMANCE.md): under 8 KB minified and
// gzipped. The source without its comments and indentation, gzipped, is a
// stricter bound (a minifier also shortens names) that needs no minifier in
// the test.
func TestClientSize(t *testing.T) {
	stripped := regexp.MustCompile(`(?m)^\s*//.*\n|^\s+`).ReplaceAll(Source, nil)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(stripped)
	zw.Close()
	t.Logf("gatehouse.js: %d bytes, %d without comments and indentation, %d of that gzipped", len(Source), len(stripped), buf.Len())
	if buf.Len() >= 8<<10 {
		t.Fatalf("gatehouse.js is %d bytes gzipped, over the 8 KB budget", buf.Len())
	}
}

// No dependencies, and no token ever goes where page scripts (or an XSS)
// could read it later. IndexedDB holds one thing: the DPoP key record (a
// non-extractable CryptoKey, its public JWK and thumbprint), written in
// one place.
func TestClientKeepsTokensInMemory(t *testing.T) {
	code := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAll(Source, nil) // comments may name them
	for _, bad := range []string{
		`(?m)^\s*import\s`, `\bimport\(`, `\brequire\(`, // dependencies
		`localStorage`, `sessionStorage`, `document\.cookie`, // storage
		`\?access_token=`, `[?&]token=`, // tokens in URLs
	} {
		if regexp.MustCompile(bad).Match(code) {
			t.Errorf("gatehouse.js matches %s", bad)
		}
	}
	if n := len(regexp.MustCompile(`indexedDB\.open`).FindAll(code, -1)); n != 1 {
		t.Errorf("indexedDB is opened in %d places, want 1 (keyDB)", n)
	}
	writes := regexp.MustCompile(`keyDB\("readwrite", \(s\) => s\.(\w+)\(([^)]*)\)\)`).FindAllSubmatch(code, -1)
	if len(writes) != 2 {
		t.Fatalf("%d writes to the key store, want 2 (put the key, delete it)", len(writes))
	}
	for _, w := range writes {
		if op, args := string(w[1]), string(w[2]); !(op == "put" && args == "key, this.baseUrl") && !(op == "delete" && args == "this.baseUrl") {
			t.Errorf("the key store is written with %s(%s)", op, args)
		}
	}
	// The key is made non-extractable.
	if !regexp.MustCompile(`generateKey\(\{ name: "ECDSA", namedCurve: "P-256" \}, false, \["sign"\]\)`).Match(code) {
		t.Error("the DPoP key is not generated non-extractable")
	}
}

// Both npm packages ship their licence, README and types, and their
// READMEs link nowhere (links into the repository break on npm).
func TestNPMPackagesShip(t *testing.T) {
	for _, dir := range []string{".", "../node"} {
		raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err != nil {
			t.Fatal(err)
		}
		var pkg struct {
			Name  string   `json:"name"`
			Types string   `json:"types"`
			Files []string `json:"files"`
		}
		if err := json.Unmarshal(raw, &pkg); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"LICENSE", "README.md", strings.TrimPrefix(pkg.Types, "./")} {
			if !slices.Contains(pkg.Files, want) {
				t.Errorf("%s does not ship %s", pkg.Name, want)
			}
			if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
				t.Errorf("%s: %v", pkg.Name, err)
			}
		}
		readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
		if m := regexp.MustCompile(`\]\((\.\.?/|https?://)[^)]*\)`).Find(readme); m != nil {
			t.Errorf("%s's README links %s, which breaks outside the repository", pkg.Name, m)
		}
	}
}
