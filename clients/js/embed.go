// Package gatehousejs embeds the browser client, gatehouse.js, so the server
// can serve it at GET /gatehouse.js with no build step. The same files are
// the npm package (package.json, gatehouse.d.ts): one source for both.
package gatehousejs

import _ "embed"

// Source is gatehouse.js, an ES module with no dependencies.
//
//go:embed gatehouse.js
var Source []byte
