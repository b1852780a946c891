package auth

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// eventStore is what recording and listing security events needs (events
// that record a change are written by the change's own store method).
type eventStore interface {
	AddEvent(ctx context.Context, e store.Event) error
	EventsSince(ctx context.Context, seq int64, limit int) ([]store.Event, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	PruneEvents(ctx context.Context, t time.Time) (int, error)
}

// Security event types (API.md "Objects").
const (
	EventLoginSucceeded     = "login_succeeded"
	EventLoginFailed        = "login_failed"
	EventRefreshTokenReused = "refresh_token_reused"
	EventIPChanged          = "ip_changed"
	EventSessionRevoked     = "session_revoked"
	EventSessionsRevoked    = "sessions_revoked"
	EventPasswordChanged    = "password_changed"
	EventAccountDisabled    = "account_disabled"
	EventAccountEnabled     = "account_enabled"
	EventRoleChanged        = "role_changed"
	EventGlobalRevoke       = "global_revoke"
	EventSessionLimit       = "session_limit_evicted"
	EventRateLimited        = "rate_limited"
	EventCSRFFailed         = "csrf_failed"
	EventReauthenticated    = "reauthenticated"
	EventPermissionsChanged = "permissions_changed"
	EventPasswordReset      = "password_reset"
	EventAccountDeleted     = "account_deleted"
	// Second factors.
	EventMFAEnrolled            = "mfa_enrolled"
	EventMFARemoved             = "mfa_removed"
	EventMFAFailed              = "mfa_failed"
	EventMFASucceeded           = "mfa_succeeded"
	EventRecoveryCodeUsed       = "recovery_code_used"
	EventRecoveryCodesRegen     = "recovery_codes_regenerated"
	EventMFAReset               = "mfa_reset"
	EventWebAuthnCloneSuspected = "webauthn_clone_suspected"
	// EventDPoPMismatch: a DPoP-bound session's refresh token came
	// without a proof by its key: the token was likely stolen.
	EventDPoPMismatch = "dpop_mismatch"
)

// EventTypes lists every event type, for validation of filters.
var EventTypes = []string{
	EventLoginSucceeded, EventLoginFailed, EventRefreshTokenReused, EventIPChanged,
	EventSessionRevoked, EventSessionsRevoked, EventPasswordChanged, EventAccountDisabled,
	EventAccountEnabled, EventRoleChanged, EventGlobalRevoke, EventSessionLimit,
	EventRateLimited, EventCSRFFailed, EventReauthenticated, EventPermissionsChanged,
	EventPasswordReset, EventAccountDeleted,
	EventMFAEnrolled, EventMFARemoved, EventMFAFailed, EventMFASucceeded, EventRecoveryCodeUsed,
	EventRecoveryCodesRegen, EventMFAReset, EventWebAuthnCloneSuspected, EventDPoPMismatch,
}

// Event records a security event in the store and as a structured log
// record. It never carries a secret: callers pass ids and fixed phrases,
// and slog's handlers quote user-controlled strings (no log injection).
// A failure to store is logged, not returned: losing an audit row must not
// turn a revocation into an error for the caller.
func (s *Service) Event(ctx context.Context, typ string, m Meta, userID, sessionID, detail string) {
	s.event(ctx, typ, m, userID, sessionID, detail)
}

func (s *Service) event(ctx context.Context, typ string, m Meta, userID, sessionID, detail string) {
	e := s.newEvent(typ, m, userID, sessionID, detail)
	if aggregated(typ) {
		s.recordAll(ctx, s.refused.note(e)) // nothing while a window counts
		return
	}
	s.record(ctx, e)
}

// newEvent is an event of now, its client strings made storable. Events
// that record a change are handed to the store method making the change,
// which commits them with it (the outbox); committed, they are announced.
func (s *Service) newEvent(typ string, m Meta, userID, sessionID, detail string) store.Event {
	if m.ClientID != "" {
		detail = strings.TrimPrefix(detail+"; by service client "+m.ClientID, "; ")
	}
	m, detail = m.clean(), cleanText(detail, 512)
	return store.Event{ID: newID(), Type: typ, At: s.now(), UserID: userID, SessionID: sessionID,
		IP: m.IP, UserAgent: m.UserAgent, Detail: detail}
}

// record stores one event that accompanies no change of state (a refused
// request, a failed login) and announces it. A failure to store is logged,
// not returned: losing such an audit row must not turn a refusal into an
// error for the caller.
func (s *Service) record(ctx context.Context, e store.Event) {
	// The event outlives a cancelled request: it describes something that
	// already happened.
	if err := s.events.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("store security event", slog.String("type", e.Type), slog.Any("err", err))
	}
	s.announce(ctx, e)
}

// announce logs committed events and wakes the outbox feed that delivers
// them to their users' live subscribers.
func (s *Service) announce(ctx context.Context, events ...store.Event) {
	if len(events) > 0 {
		defer s.kickOutbox()
	}
	for _, e := range events {
		level := slog.LevelInfo
		if e.Type == EventRefreshTokenReused || e.Type == EventCSRFFailed || e.Type == EventLoginFailed {
			level = slog.LevelWarn
		}
		s.log.LogAttrs(ctx, level, "security event",
			slog.String("type", e.Type), slog.String("user_id", e.UserID), slog.String("session_id", e.SessionID),
			slog.String("ip", e.IP), slog.String("user_agent", e.UserAgent), slog.String("detail", e.Detail))
	}
}
