package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeRequest: the strict decoder never panics, only ever answers 400
// on failure, and whatever it accepts is an object with only the known keys
// that encoding/json reads the same way.
func FuzzDecodeRequest(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzDecodeRequest.
	f.Fuzz(func(t *testing.T, body []byte) {
		var c, thorough credentials
		err := decodeStrict(body, &c)
		// The one-pass path and the token-by-token one agree.
		terr := decodeThorough(body, &thorough, jsonFields(reflect.TypeOf(thorough)))
		if (err == nil) != (terr == nil) || err == nil && c != thorough {
			t.Fatalf("%q: decodeStrict %v %+v, decodeThorough %v %+v", body, err, c, terr, thorough)
		}
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || ae.code != "invalid_request" {
				t.Fatalf("error %v is not a 400 invalid_request", err)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body encoding/json rejects as an object: %q", body)
		}
		for k := range m {
			if k != "username" && k != "password" {
				t.Fatalf("accepted unknown key %q", k)
			}
		}
		var again credentials
		json.Unmarshal(body, &again)
		if again != c {
			t.Fatalf("decoders disagree: %+v vs %+v", c, again)
		}
	})
}
