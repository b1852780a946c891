package auth

import (
	"fmt"
	"slices"
)

// Permissions (API.md "Permissions"): 1-64 characters of a-z 0-9 : . _ -,
// at most 64 per user, and at most MaxPermissionBytes in all.
const maxPermissions = 64

// MaxPermissionBytes bounds the total length of a user's permissions, so
// that the largest access token the server can issue works on every
// transport: the server's and guard's 4096-byte token limit, a browser's
// 4096 bytes per cookie (the access cookie with its attributes), and the
// 4096-byte first message of a WebSocket. 64 permissions of 64 characters
// made a 6.2 KB token that all three refused. With an issuer of at most
// MaxIssuerLength, an EdDSA token stays under 3,900 bytes.
const MaxPermissionBytes = 2048

// MaxIssuerLength bounds --issuer for the same reason.
const MaxIssuerLength = 256

// NormalizePermissions validates a permission list and returns it sorted
// without duplicates.
func NormalizePermissions(in []string) ([]string, error) {
	if len(in) > maxPermissions {
		return nil, fmt.Errorf("%w: at most %d permissions", ErrInvalidRequest, maxPermissions)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, p := range in {
		if !validPermission(p) {
			return nil, fmt.Errorf("%w: permission %q must be 1-64 characters of a-z 0-9 : . _ -", ErrInvalidRequest, truncateForError(p))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	total := 0
	for _, p := range out {
		total += len(p)
	}
	if total > MaxPermissionBytes {
		return nil, fmt.Errorf("%w: permissions may total at most %d bytes (these are %d): access tokens must fit a cookie and a header", ErrInvalidRequest, MaxPermissionBytes, total)
	}
	slices.Sort(out)
	return out, nil
}

func validPermission(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
