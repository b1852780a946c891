package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	gatehousejs "github.com/gatehouse-auth/gatehouse/clients/js"
)

// clientETag is computed once: the script is compiled into the binary.
var clientETag = func() string {
	sum := sha256.Sum256(gatehousejs.Source)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}()

// clientScript serves the browser client (API.md "Browser client"). It is
// public and the same for everyone, so unlike the API it may be cached; it
// is revalidated by ETag so an upgraded server is picked up at once.
func (h *handler) clientScript(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	hdr.Set("Cache-Control", "public, no-cache")
	hdr.Set("ETag", clientETag)
	// Apps on other origins import it as a module: that is a CORS request,
	// answered by the middleware for allowed origins only.
	http.ServeContent(w, r, "gatehouse.js", time.Time{}, bytes.NewReader(gatehousejs.Source))
}
