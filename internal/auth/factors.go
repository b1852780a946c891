package auth

// The account's second factors: listing, TOTP enrolment and its first code,
// removal, recovery codes, and the admin's reset. Every change is one
// UpdateMFA: decided from the factors as locked, committed with its events
// and the sessions it revokes.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Factors lists the caller's factors and how many recovery codes are left.
func (s *Service) Factors(ctx context.Context, p Principal) ([]store.Factor, int, error) {
	m, err := s.mfa.GetMFA(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, ErrTokenRevoked // the account is gone
	}
	if err != nil {
		return nil, 0, err
	}
	return m.Factors, len(m.RecoveryCodes), nil
}

// TOTPEnrollment is a new, pending TOTP factor and what the person copies
// into an authenticator app (shown once).
type TOTPEnrollment struct {
	Factor store.Factor
	Secret string // base32
	URI    string // otpauth://
}

func factorLabel(label, def string) (string, error) {
	label = strings.TrimSpace(label)
	if label == "" {
		return def, nil
	}
	if len(label) > maxFactorLabel || cleanText(label, maxFactorLabel) != label || strings.ContainsAny(label, "\r\n\t") {
		return "", fmt.Errorf("%w: a label is at most %d bytes of printable UTF-8", ErrInvalidRequest, maxFactorLabel)
	}
	return label, nil
}

// EnrollTOTP creates a pending TOTP factor; a first valid code
// (VerifyFactor) makes it active. A pending TOTP factor enrolled earlier
// and never verified is replaced.
func (s *Service) EnrollTOTP(ctx context.Context, p Principal, label string) (TOTPEnrollment, error) {
	label, err := factorLabel(label, "Authenticator app")
	if err != nil {
		return TOTPEnrollment{}, err
	}
	raw := randomBytes(20) // 160 bits, RFC 4226's recommendation
	f := store.Factor{ID: newID(), UserID: p.UserID, Type: store.FactorTOTP, Label: label, CreatedAt: s.now()}
	f.Secret = s.factorSealer.Seal(raw, []byte(f.ID))
	m, _, err := s.mfa.UpdateMFA(ctx, p.UserID, func(old store.MFA) (store.MFAUpdate, error) {
		next := slices.DeleteFunc(slices.Clone(old.Factors), func(x store.Factor) bool {
			return x.Type == store.FactorTOTP && !x.Active
		})
		if len(next) >= maxFactors {
			return store.MFAUpdate{}, fmt.Errorf("%w: an account has at most %d factors; remove one first", ErrInvalidRequest, maxFactors)
		}
		return store.MFAUpdate{Factors: append(next, f), RecoveryCodes: old.RecoveryCodes, Now: s.now()}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return TOTPEnrollment{}, ErrTokenRevoked
	} else if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{Factor: f, Secret: b32.EncodeToString(raw),
		URI: otpauthURI(s.cfg.TOTPIssuer, m.User.Username, raw)}, nil
}

// VerifyFactor activates a pending TOTP factor with a first code, which is
// consumed like any other (it cannot be used again to sign in). The
// account's first active factor comes with its recovery codes, returned
// once.
func (s *Service) VerifyFactor(ctx context.Context, p Principal, id, code string, m Meta) (store.Factor, []string, error) {
	m = m.clean()
	u, err := s.accounts.GetUserByID(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Factor{}, nil, ErrTokenRevoked
	} else if err != nil {
		return store.Factor{}, nil, err
	}
	done, err := s.reserveAttempt(ctx, u, m)
	if err != nil {
		return store.Factor{}, nil, err
	}
	var out store.Factor
	var codes []string
	var enrolled store.Event
	_, _, err = s.mfa.UpdateMFA(ctx, p.UserID, func(old store.MFA) (store.MFAUpdate, error) {
		i := slices.IndexFunc(old.Factors, func(f store.Factor) bool { return f.ID == id })
		if i < 0 {
			return store.MFAUpdate{}, ErrNotFound
		}
		f := old.Factors[i]
		if f.Type != store.FactorTOTP || f.Active {
			return store.MFAUpdate{}, fmt.Errorf("%w: that factor is not a pending TOTP factor", ErrInvalidRequest)
		}
		now := s.now()
		step, ok := s.checkTOTP(f, code, now)
		if !ok {
			return store.MFAUpdate{}, errWrongFactor
		}
		f.Active, f.Counter, f.LastUsedAt = true, step, now
		next := slices.Clone(old.Factors)
		next[i] = f
		up := store.MFAUpdate{Factors: next, RecoveryCodes: old.RecoveryCodes, Now: now}
		if !old.Active() {
			var hashes [][]byte
			codes, hashes = s.newRecoveryCodes(p.UserID)
			up.RecoveryCodes = hashes
		}
		out = f
		up.Events = func([]store.RevokedSession) []store.Event {
			enrolled = s.newEvent(EventMFAEnrolled, m, p.UserID, p.SessionID, "totp "+f.ID)
			return []store.Event{enrolled}
		}
		return up, nil
	})
	done(err)
	switch {
	case errors.Is(err, errWrongFactor):
		s.event(ctx, EventMFAFailed, m, p.UserID, p.SessionID, "enrolment: wrong code")
		return store.Factor{}, nil, ErrInvalidMFACode
	case errors.Is(err, store.ErrNotFound):
		return store.Factor{}, nil, ErrTokenRevoked
	case err != nil:
		return store.Factor{}, nil, err
	}
	s.announce(ctx, enrolled)
	return out, codes, nil
}

// checkTOTP matches code against an active or pending TOTP factor,
// refusing replays (steps up to f.Counter).
func (s *Service) checkTOTP(f store.Factor, code string, now time.Time) (int64, bool) {
	raw, err := s.factorSealer.Open(f.Secret, []byte(f.ID))
	if err != nil {
		s.log.Error("a TOTP secret cannot be opened (wrong master secret?)", slog.String("factor", f.ID))
		return 0, false
	}
	return matchTOTP(raw, code, now, f.Counter)
}

// RemoveFactor deletes one of the caller's factors and revokes every other
// session of the account (as a password change does): whoever enrolled or
// used it elsewhere is out. Removing the last active factor also removes
// the recovery codes. The route is step-up gated with the second factor.
func (s *Service) RemoveFactor(ctx context.Context, p Principal, id string, m Meta) error {
	m = m.clean()
	now := s.now()
	var removed store.Event
	_, revoked, err := s.mfa.UpdateMFA(ctx, p.UserID, func(old store.MFA) (store.MFAUpdate, error) {
		i := slices.IndexFunc(old.Factors, func(f store.Factor) bool { return f.ID == id })
		if i < 0 {
			return store.MFAUpdate{}, ErrNotFound
		}
		f := old.Factors[i]
		up := store.MFAUpdate{Factors: slices.Delete(slices.Clone(old.Factors), i, i+1), RecoveryCodes: old.RecoveryCodes,
			RevokeSessions: true, ExceptSession: p.SessionID, Reason: ReasonMFARemoved, Now: now}
		if !(store.MFA{Factors: up.Factors}).Active() {
			up.RecoveryCodes = nil
		}
		up.Events = func(revoked []store.RevokedSession) []store.Event {
			removed = s.newEvent(EventMFARemoved, m, p.UserID, p.SessionID,
				fmt.Sprintf("%s %s; %s revoked", f.Type, f.ID, count(len(revoked), "other session")))
			return []store.Event{removed}
		}
		return up, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrTokenRevoked
	} else if err != nil {
		return err
	}
	s.committedRevocations(ctx, revoked, ReasonMFARemoved, now, removed)
	return nil
}

// RegenerateRecoveryCodes replaces the caller's recovery codes with ten new
// ones, returned once; the old ones stop working. Only for an account with
// an active factor (codes stand in for one).
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p Principal, m Meta) ([]string, error) {
	m = m.clean()
	var codes []string
	var ev store.Event
	_, _, err := s.mfa.UpdateMFA(ctx, p.UserID, func(old store.MFA) (store.MFAUpdate, error) {
		if !old.Active() {
			return store.MFAUpdate{}, fmt.Errorf("%w: recovery codes need an active second factor first", ErrInvalidRequest)
		}
		var hashes [][]byte
		codes, hashes = s.newRecoveryCodes(p.UserID)
		return store.MFAUpdate{Factors: old.Factors, RecoveryCodes: hashes, Now: s.now(),
			Events: func([]store.RevokedSession) []store.Event {
				ev = s.newEvent(EventRecoveryCodesRegen, m, p.UserID, p.SessionID, "")
				return []store.Event{ev}
			}}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrTokenRevoked
	} else if err != nil {
		return nil, err
	}
	s.announce(ctx, ev)
	return codes, nil
}

// ResetMFA is the admin's reset: every factor and code of the account
// removed and every session revoked (the person signs in again with the
// password and enrols anew).
func (s *Service) ResetMFA(ctx context.Context, userID string, m Meta) error {
	if !validID(userID) {
		return ErrNotFound // no such user, and no hostile bytes sent to the store
	}
	m = m.clean()
	now := s.now()
	var ev store.Event
	_, revoked, err := s.mfa.UpdateMFA(ctx, userID, func(old store.MFA) (store.MFAUpdate, error) {
		return store.MFAUpdate{RevokeSessions: true, Reason: ReasonMFAReset, Now: now,
			Events: func(revoked []store.RevokedSession) []store.Event {
				ev = s.newEvent(EventMFAReset, m, userID, "",
					fmt.Sprintf("%s removed; %s revoked", count(len(old.Factors), "factor"), count(len(revoked), "session")))
				return []store.Event{ev}
			}}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	s.committedRevocations(ctx, revoked, ReasonMFAReset, now, ev)
	return nil
}

// Recovery codes: 12 characters of an unambiguous alphabet (60 bits),
// shown as xxxx-xxxx-xxxx; stored as an HMAC keyed with a secret derived
// from the master secret and bound to the account.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no 0/o, 1/l/i

func (s *Service) newRecoveryCodes(userID string) (codes []string, hashes [][]byte) {
	for range recoveryCodeCount {
		var b strings.Builder
		for i, r := range randomBytes(12) {
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			// 31 symbols: the modulo bias is 8/256 per character, a
			// fraction of a bit over 12 characters; still over 58 bits.
			b.WriteByte(recoveryAlphabet[int(r)%len(recoveryAlphabet)])
		}
		codes = append(codes, b.String())
		hashes = append(hashes, s.recoveryHash(userID, b.String()))
	}
	return codes, hashes
}

// normalizeRecoveryCode accepts what people type: any case, with or
// without the dashes and spaces.
func normalizeRecoveryCode(code string) (string, bool) {
	if len(code) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == '-' || r == ' ':
		case r < 128 && strings.ContainsRune(recoveryAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), b.Len() == 12
}

func (s *Service) recoveryHash(userID, code string) []byte {
	norm, _ := normalizeRecoveryCode(code)
	m := hmac.New(sha256.New, s.codeKey)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(norm))
	return m.Sum(nil)
}

// reserveAttempt takes one attempt of the account's login budget from the
// caller's address before a second factor is checked. done(outcome)
// settles it: nil records a success, errWrongFactor leaves the failure
// counted, anything else (never judged) releases it. Refused: a
// RateLimitError.
func (s *Service) reserveAttempt(ctx context.Context, u store.User, m Meta) (done func(outcome error), err error) {
	attempt, err := s.throttle.Allow(ctx, u.Key(), m.IP, s.now())
	if err != nil {
		return nil, err
	}
	if attempt.Wait > 0 {
		s.metrics.rateLimited.WithLabelValues(attempt.Limit).Inc()
		s.event(ctx, EventRateLimited, m, u.ID, "", "second-factor attempts throttled ("+attempt.Limit+")")
		return nil, &RateLimitError{RetryAfter: attempt.Wait}
	}
	return func(outcome error) {
		ctx := context.WithoutCancel(ctx)
		switch {
		case outcome == nil:
			if err := s.throttle.Success(ctx, attempt, s.now()); err != nil {
				s.log.Warn("login throttle: recording a success", slog.Any("err", err))
			}
		case errors.Is(outcome, errWrongFactor):
		default:
			if err := s.throttle.Release(ctx, attempt); err != nil {
				s.log.Warn("login throttle: releasing an attempt", slog.Any("err", err))
			}
		}
	}, nil
}
