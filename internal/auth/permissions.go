package auth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
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
// MaxIssuerLength and audiences of at most MaxAudienceBytes (tokens carry
// aud and client_id since the resource-server release, and cnf when
// DPoP-bound, which took the bound down from 2048), the largest token
// stays under 4,000 bytes (TestLargestTokenWorksEverywhere).
const MaxPermissionBytes = 1536

// MaxIssuerLength bounds --issuer for the same reason.
const MaxIssuerLength = 256

// MaxAudienceBytes bounds the --audience list (all of it is in each token
// that is not narrowed to one audience).
const MaxAudienceBytes = 512

// CheckAudiences validates an audience list: absolute URIs (RFC 8707
// resources: no fragment), distinct, MaxAudienceBytes in all.
func CheckAudiences(list []string) error {
	total := 0
	seen := map[string]bool{}
	for _, a := range list {
		u, err := url.Parse(a)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.ContainsAny(a, " \t\r\n\"") {
			return fmt.Errorf("%q is not an absolute URI without a fragment", a)
		}
		if seen[a] {
			return fmt.Errorf("%q is listed twice", a)
		}
		seen[a] = true
		total += len(a)
	}
	if total > MaxAudienceBytes {
		return fmt.Errorf("at most %d bytes in all (every access token carries them)", MaxAudienceBytes)
	}
	return nil
}

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
