package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// RFC 7662 introspection and RFC 7009 revocation, for resource servers.

// Introspection is an RFC 7662 answer. Inactive tokens carry nothing else.
type Introspection struct {
	Active bool
	// TokenType is how the token is used (RFC 7662 token_type): "Bearer",
	// or "DPoP" for a token bound to a key (JKT, its cnf.jkt); a refresh
	// token's is "refresh_token".
	TokenType string
	JKT       string
	Subject   string
	SessionID string
	Role      string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Introspect reports whether a token is active now. It never changes state:
// introspecting an old refresh token is not reuse.
func (s *Service) Introspect(ctx context.Context, tok string) (Introspection, error) {
	if strings.HasPrefix(tok, token.RefreshPrefix) {
		r, err := token.ParseRefresh(tok)
		if err != nil {
			return Introspection{}, nil
		}
		sess, u, err := s.sessions.GetSessionWithUser(ctx, r.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			return Introspection{}, nil
		}
		if err != nil {
			return Introspection{}, err
		}
		now := s.now()
		current := r.Generation == sess.Generation ||
			(r.Generation == sess.Generation-1 && s.cfg.ReuseGrace > 0 && now.Sub(sess.RotatedAt) <= s.cfg.ReuseGrace)
		if !s.refresh.Verify(r, sess.Nonce) || !current || sess.Revoked() || u.Disabled ||
			!now.Before(sess.ExpiresAt) || !now.Before(sess.IdleExpiresAt) {
			return Introspection{}, nil
		}
		return Introspection{Active: true, TokenType: "refresh_token", Subject: u.ID, SessionID: sess.ID,
			Role: u.Role, IssuedAt: sess.RotatedAt, ExpiresAt: minTime(sess.IdleExpiresAt, sess.ExpiresAt)}, nil
	}
	p, err := s.Authenticate(tok)
	if err != nil {
		return Introspection{}, nil
	}
	typ := "Bearer"
	if p.DPoPJKT != "" {
		typ = "DPoP"
	}
	return Introspection{Active: true, TokenType: typ, JKT: p.DPoPJKT, Subject: p.UserID, SessionID: p.SessionID,
		Role: p.Role, IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt}, nil
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
