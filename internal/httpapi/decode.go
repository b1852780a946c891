package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 64 << 10

// readBody reads the whole body under the size limit.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, errInvalidRequest("The request body could not be read.")
	}
	return b, nil
}

// decodeJSON reads a JSON object body into dst strictly: the media type
// must be application/json, the body one object whose keys are exactly
// (case-sensitively) the json names of dst's fields, each at most once, with
// the right types and nothing after it. encoding/json alone would accept
// "USERNAME" for "username" and let a second "password" key win, which
// lets a proxy and this server read different credentials.
//
// An empty body decodes to dst's zero value when allowEmpty is set.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, allowEmpty bool) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return errInvalidRequest("A JSON body is required.")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errInvalidRequest("Content-Type must be application/json.")
	}
	return decodeStrict(body, dst)
}

// decodeStrict is decodeJSON's parser, separate for fuzzing. A body that
// decodes, and whose keys then pass the one-pass check, is done; anything
// else (or what the quick check cannot judge: an escaped key) goes through
// decodeThorough, which decodes it again or says exactly what is wrong.
// Both accept the same bodies (FuzzDecodeRequest).
func decodeStrict(body []byte, dst any) error {
	allowed := jsonFields(reflect.TypeOf(dst).Elem())
	// Unmarshal first: it validates the whole body, which keysAllowed's
	// scanning relies on, so the body is checked once, not twice.
	if json.Unmarshal(body, dst) == nil && keysAllowed(body, allowed) {
		return nil
	}
	return decodeThorough(body, dst, allowed)
}

// keysAllowed reports whether body, which must be valid JSON, is one
// object whose keys are all in allowed (exactly as written there) and each
// there once. It allocates nothing; false also when it cannot tell
// without unescaping a key (a backslash in one).
func keysAllowed(body []byte, allowed map[string]bool) bool {
	// Valid JSON: the scanning below need not check syntax.
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	var seen [16][]byte
	n := 0
	for i = skipSpace(body, i+1); body[i] != '}'; {
		j := i + 1 // body[i] is the key's opening quote
		for body[j] != '"' {
			if body[j] == '\\' {
				return false
			}
			j++
		}
		key := body[i+1 : j]
		if !allowed[string(key)] || n == len(seen) {
			return false
		}
		for _, k := range seen[:n] {
			if bytes.Equal(k, key) {
				return false
			}
		}
		seen[n] = key
		n++
		i = skipValue(body, skipSpace(body, skipSpace(body, j+1)+1)) // past the colon
		if i = skipSpace(body, i); body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of a scalar before its container's close
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// decodeThorough is decodeStrict token by token, for the precise error.
func decodeThorough(body []byte, dst any, allowed map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errInvalidRequest("The body is not valid JSON.")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errInvalidRequest("The body must be a JSON object.")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errInvalidRequest("The body is not valid JSON.")
		}
		key, _ := tok.(string)
		if !allowed[key] {
			return errInvalidRequest(fmt.Sprintf("Unknown field %q.", truncate(key, 64)))
		}
		if seen[key] {
			return errInvalidRequest(fmt.Sprintf("Duplicate field %q.", key))
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return errInvalidRequest("The body is not valid JSON.")
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return errInvalidRequest("The body is not valid JSON.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errInvalidRequest("Unexpected data after the JSON object.")
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errInvalidRequest(fmt.Sprintf("Field %q has the wrong type.", te.Field))
		}
		return errInvalidRequest("The body is not valid JSON.")
	}
	return nil
}

// fieldsByType caches jsonFields: request types are few and fixed.
var fieldsByType sync.Map // reflect.Type -> map[string]bool

// jsonFields lists the json names of a struct's fields.
func jsonFields(t reflect.Type) map[string]bool {
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]bool)
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	fieldsByType.Store(t, out)
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
