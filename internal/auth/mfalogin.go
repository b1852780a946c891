package auth

// Proving a second factor: the login's second step (the mfa_token), the
// codes and assertions that answer it or a re-authentication, the one-time
// elevation, and the step-up and enrolment rules that read the result.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// mfaChallenge answers a right password on an account with a second
// factor: no session, a single-use ticket bound to the account and to the
// password it proved (a password change in between kills it).
func (s *Service) mfaChallenge(ctx context.Context, u store.User) error {
	m, err := s.mfa.GetMFA(ctx, u.ID)
	if err != nil {
		return err
	}
	tok, t := s.newTicket(MFATokenPrefix, store.TicketMFA, u.ID, "", credentialStamp(u), mfaTicketTTL)
	if err := s.mfa.CreateTicket(ctx, t); err != nil {
		return err
	}
	return &MFARequiredError{Token: tok, Factors: activeRefs(m)}
}

// credentialStamp identifies the password a ticket was issued against.
func credentialStamp(u store.User) []byte {
	sum := sha256.Sum256([]byte(u.PasswordHash))
	return sum[:]
}

// CompleteMFA is the login's second step: the mfa_token and a TOTP code or
// a recovery code (code), or a WebAuthn assertion. It opens the session
// with tokens of aal2. A wrong answer counts against the ticket (five kill
// it) and the account's login throttle; a spent, expired or dead ticket
// is ErrInvalidToken.
func (s *Service) CompleteMFA(ctx context.Context, tok, code string, assertion []byte, m Meta) (Tokens, error) {
	m = m.clean()
	if code == "" && assertion == nil {
		return Tokens{}, fmt.Errorf("%w: send a code or a WebAuthn assertion", ErrInvalidRequest)
	}
	if !validTicketToken(tok, MFATokenPrefix) {
		return Tokens{}, ErrInvalidToken
	}
	id := ticketID(tok)
	t, err := s.mfa.GetTicket(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.TicketMFA) {
		return Tokens{}, ErrInvalidToken
	} else if err != nil {
		return Tokens{}, err
	}
	u, err := s.accounts.GetUserByID(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(credentialStamp(u), t.Data)) {
		return Tokens{}, ErrInvalidToken // deleted, or the password changed since
	} else if err != nil {
		return Tokens{}, err
	}
	if u.Disabled {
		return Tokens{}, ErrAccountDisabled
	}
	methods, err := s.proveSecondFactor(ctx, u, "", code, assertion, webauthnMFA, [][]byte{id}, m)
	switch {
	case errors.Is(err, ErrInvalidMFACode):
		if _, ferr := s.mfa.FailTicket(ctx, id, mfaTicketFailures); ferr != nil {
			return Tokens{}, ferr
		}
		return Tokens{}, err
	case errors.Is(err, store.ErrConflict):
		return Tokens{}, ErrInvalidToken // a racing request spent the ticket
	case err != nil:
		return Tokens{}, err
	}
	return s.openSession(ctx, u, proof(s.now(), append([]string{AMRPassword}, methods...)...), m, false)
}

// proveSecondFactor checks a code (TOTP or recovery) or a WebAuthn
// assertion of ceremony against u's factors, under the account's login
// throttle, consuming the tickets consume in the same transaction. It
// returns the methods proven; a wrong answer is ErrInvalidMFACode, a
// ticket spent meanwhile store.ErrConflict.
func (s *Service) proveSecondFactor(ctx context.Context, u store.User, sessionID, code string, assertion []byte, ceremony string, consume [][]byte, m Meta) ([]string, error) {
	done, err := s.reserveAttempt(ctx, u, m)
	if err != nil {
		return nil, err
	}
	var methods []string
	var events []store.Event
	if assertion != nil {
		methods, events, err = s.useAssertion(ctx, u, sessionID, assertion, ceremony, consume, m)
	} else {
		methods, events, err = s.useCode(ctx, u, sessionID, code, consume, m)
	}
	done(err)
	if errors.Is(err, errWrongFactor) {
		s.event(ctx, EventMFAFailed, m, u.ID, sessionID, "")
		return nil, ErrInvalidMFACode
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, events...)
	return methods, nil
}

// useCode accepts a TOTP code of an active factor (a step later than the
// last one accepted, which it becomes) or an unused recovery code (which
// it deletes), in one UpdateMFA: of two racing uses of one code, exactly
// one is accepted.
func (s *Service) useCode(ctx context.Context, u store.User, sessionID, code string, consume [][]byte, m Meta) ([]string, []store.Event, error) {
	var events []store.Event
	_, _, err := s.mfa.UpdateMFA(ctx, u.ID, func(old store.MFA) (store.MFAUpdate, error) {
		events = nil
		now := s.now()
		up := store.MFAUpdate{Factors: slices.Clone(old.Factors), RecoveryCodes: old.RecoveryCodes,
			ConsumeTickets: consume, Now: now}
		if !old.Active() {
			return up, errWrongFactor
		}
		if isDigits(code, totpDigits) {
			for i, f := range up.Factors {
				if f.Type != store.FactorTOTP || !f.Active {
					continue
				}
				if step, ok := s.checkTOTP(f, code, now); ok {
					f.Counter, f.LastUsedAt = step, now
					up.Factors[i] = f
					events = []store.Event{s.newEvent(EventMFASucceeded, m, u.ID, sessionID, "totp "+f.ID)}
					up.Events = func([]store.RevokedSession) []store.Event { return events }
					return up, nil
				}
			}
			return up, errWrongFactor
		}
		if _, ok := normalizeRecoveryCode(code); !ok {
			return up, errWrongFactor
		}
		h := s.recoveryHash(u.ID, code)
		i := slices.IndexFunc(old.RecoveryCodes, func(x []byte) bool { return bytes.Equal(x, h) })
		if i < 0 {
			return up, errWrongFactor
		}
		up.RecoveryCodes = slices.Delete(slices.Clone(old.RecoveryCodes), i, i+1)
		events = []store.Event{
			s.newEvent(EventMFASucceeded, m, u.ID, sessionID, "recovery code"),
			s.newEvent(EventRecoveryCodeUsed, m, u.ID, sessionID, fmt.Sprintf("%d left", len(up.RecoveryCodes))),
		}
		up.Events = func([]store.RevokedSession) []store.Event { return events }
		return up, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return []string{AMROTP}, events, nil
}

// elevate answers a re-authentication asked as one-time: the session's
// proof is left as it was (a thief of its ordinary tokens gains no
// elevated window) and a single-use elevation token, bound to the session
// and carrying the proof's level, is returned with tokens for the session.
func (s *Service) elevate(ctx context.Context, u store.User, sess store.Session, pf store.Proof, m Meta) (Tokens, string, error) {
	tok, t := s.newTicket(ElevationPrefix, store.TicketElevation, u.ID, sess.ID, []byte(pf.ACR), elevationTTL)
	if err := s.mfa.CreateTicket(ctx, t); err != nil {
		return Tokens{}, "", err
	}
	now := s.now()
	if err := s.sessions.ExtendAccess(ctx, sess.ID, s.accessExpiry(now, sess)); errors.Is(err, store.ErrConflict) {
		return Tokens{}, "", ErrSessionRevoked
	} else if err != nil {
		return Tokens{}, "", err
	}
	s.event(ctx, EventReauthenticated, m, u.ID, sess.ID, "one-time elevation")
	tk, err := s.issue(now, u, sess)
	return tk, tok, err
}

// RequireRecentAuth is the step-up rule (RFC 9470) of the sensitive
// operations: a proof within ReauthMaxAge, and for an account with an
// active second factor one of aal2. elevation, if not empty, is a
// one-time elevation token (Gatehouse-Elevation) standing in for that
// proof: it is consumed, whatever the outcome. A refresh never renews
// auth_time, so a stolen refresh token does not buy a step-up.
func (s *Service) RequireRecentAuth(ctx context.Context, p Principal, elevation string) error {
	if p.Service() {
		return nil // a machine proves itself with its secret on every token; its calls are audited as its own
	}
	needACR := ""
	if p.ACR != ACR2 {
		u, err := s.accounts.GetUserByID(ctx, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return ErrTokenRevoked
		} else if err != nil {
			return err
		}
		if u.MFA {
			needACR = ACR2
		}
	}
	challenge := &StepUpError{MaxAge: s.cfg.ReauthMaxAge, ACR: needACR}
	if p.ACR == ACR2 {
		challenge.ACR = ACR2
	}
	if elevation != "" {
		if !validTicketToken(elevation, ElevationPrefix) {
			return challenge
		}
		t, err := s.mfa.ConsumeTicket(ctx, ticketID(elevation), s.now())
		if errors.Is(err, store.ErrNotFound) {
			return challenge
		} else if err != nil {
			return err
		}
		if t.Kind != store.TicketElevation || t.SessionID != p.SessionID || t.UserID != p.UserID ||
			(needACR == ACR2 && string(t.Data) != ACR2) {
			return challenge
		}
		return nil
	}
	if needACR != "" || p.AuthTime.IsZero() || s.now().Sub(p.AuthTime) > s.cfg.ReauthMaxAge {
		return challenge
	}
	return nil
}

// RequireEnrollment refuses, with ErrMFAEnrollmentRequired, an account
// whose role requires a second factor (--require-mfa) and which has none
// yet. Only aal1 tokens of such roles ask, and the account is read as
// /v1/me reads it: from the session's snapshot while that is current
// (snapshots.go; this process's own enrolment shows at once, another
// instance's within the snapshot's TTL), else from the store.
func (s *Service) RequireEnrollment(ctx context.Context, p Principal) error {
	if !slices.Contains(s.cfg.RequireMFARoles, p.Role) || p.ACR == ACR2 || p.Service() {
		return nil
	}
	u, _, err := s.Me(ctx, p)
	if err != nil {
		return err
	}
	if !u.MFA {
		return ErrMFAEnrollmentRequired
	}
	return nil
}

// pruneTickets drops expired tickets (hourly).
func (s *Service) pruneTickets(ctx context.Context, now time.Time) {
	if _, err := s.mfa.PruneTickets(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("prune tickets failed", "err", err)
	}
}
