package auth

import (
	"context"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// RFC 7662 introspection and RFC 7009 revocation, for resource servers.

// Introspection is an RFC 7662 answer. Inactive tokens carry nothing else.
type Introspection struct {
	Active bool
	// TokenType is how the token is used (RFC 7662 token_type): "Bearer",
	// or "DPoP" for a token bound to a key (JKT, its cnf.jkt).
	TokenType string
	JKT       string
	Claims    token.Claims
	// Username is the user's name ("" for a service client's token).
	Username string
}

// Introspect reports whether an access token is active now: verified,
// unexpired, not revoked, its user still there. It never changes state.
// Refresh tokens are never active here: introspection is for resource
// servers, which must never take a refresh token for an access token.
func (s *Service) Introspect(ctx context.Context, tok string) (Introspection, error) {
	if strings.HasPrefix(tok, token.RefreshPrefix) {
		return Introspection{}, nil
	}
	c, p, err := s.authenticate(tok)
	if err != nil {
		return Introspection{}, nil
	}
	out := Introspection{Active: true, TokenType: "Bearer", JKT: p.DPoPJKT, Claims: c}
	if p.DPoPJKT != "" {
		out.TokenType = "DPoP"
	}
	if c.ClientID != "" && c.ClientID != FirstPartyClient && c.Subject == c.ClientID {
		return out, nil // a service client's token
	}
	// The name from memory, as forward auth takes it: a deleted account's
	// tokens were refused above by the revocation state (its deletion
	// logs a cutoff), and a name never changes.
	name, err := s.Username(ctx, c.Subject)
	switch {
	case err != nil:
		return Introspection{}, err
	case name == "":
		return Introspection{}, nil // deleted meanwhile
	}
	out.Username = name
	return out, nil
}

// RevokeToken is RFC 7009: a refresh or access token revokes its whole
// session (revocation is keyed by session, never by token string); anything
// unrecognised is silently ignored.
func (s *Service) RevokeToken(ctx context.Context, tok string, m Meta) error {
	if strings.HasPrefix(tok, token.RefreshPrefix) {
		return s.Logout(ctx, tok, "", m)
	}
	return s.Logout(ctx, "", tok, m)
}
