package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// joinAMR encodes a session's methods for their column (space-separated;
// the values are RFC 8176 tokens, which have no spaces). A session that
// names none proved a password.
func joinAMR(amr []string) string {
	if len(amr) == 0 {
		return "pwd"
	}
	return strings.Join(amr, " ")
}

func acrOr(acr string) string {
	if acr == "" {
		return "aal1"
	}
	return acr
}

// --- second factors ---

func (s *Store) GetMFA(ctx context.Context, userID string) (store.MFA, error) {
	return s.readMFA(ctx, s.db.Reader(), userID, "")
}

// readMFA reads the user (with lock, e.g. " FOR UPDATE"), its factors and
// its codes on c.
func (s *Store) readMFA(ctx context.Context, c Conn, userID, lock string) (m store.MFA, err error) {
	const what = "read factors"
	if m.User, err = ScanUser(s.queryRow(ctx, c, `SELECT `+UserCols+` FROM users WHERE id = ?`+lock, userID)); err != nil {
		return m, s.wrap(what, err)
	}
	if m.Factors, err = list(ctx, s, c, what, ScanFactor,
		`SELECT `+FactorCols+` FROM factors WHERE user_id = ? ORDER BY created_at, id`, userID); err != nil {
		return m, err
	}
	m.RecoveryCodes, err = list(ctx, s, c, what, func(r Row) ([]byte, error) {
		var h []byte
		return h, r.Scan(&h)
	}, `SELECT hash FROM recovery_codes WHERE user_id = ? ORDER BY hash`, userID)
	return m, err
}

func (s *Store) UpdateMFA(ctx context.Context, userID string, update func(store.MFA) (store.MFAUpdate, error)) (m store.MFA, revoked []store.RevokedSession, err error) {
	const what = "update factors"
	err = s.inLogTx(ctx, what, func(tx Tx) error {
		old, err := s.readMFA(ctx, tx, userID, " FOR UPDATE")
		if err != nil {
			return err
		}
		m = old
		up, err := update(old)
		if errors.Is(err, store.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, id := range up.ConsumeTickets {
			n, err := s.exec(ctx, tx, `DELETE FROM tickets WHERE id = ? AND expires_at > ?`, id, NS(up.Now))
			if err != nil {
				return s.wrap(what, err)
			}
			if n == 0 {
				return fmt.Errorf("%s: ticket spent: %w", what, store.ErrConflict)
			}
		}
		if err := s.writeFactors(ctx, tx, userID, old.Factors, up.Factors); err != nil {
			return s.wrap(what, err)
		}
		if !slices.EqualFunc(old.RecoveryCodes, up.RecoveryCodes, bytes.Equal) {
			if err := s.writeCodes(ctx, tx, userID, old.RecoveryCodes, up.RecoveryCodes); err != nil {
				return s.wrap(what, err)
			}
		}
		m = store.MFA{User: old.User, Factors: up.Factors, RecoveryCodes: up.RecoveryCodes}
		if active := m.Active(); active != old.User.MFA {
			if _, err := s.exec(ctx, tx, `UPDATE users SET mfa = ? WHERE id = ?`, active, userID); err != nil {
				return s.wrap(what, err)
			}
			m.User.MFA = active
		}
		if up.RevokeSessions {
			if revoked, err = s.revokeUserSessions(ctx, tx, userID, up.ExceptSession, up.Reason, up.Now); err != nil {
				return err
			}
		}
		if up.Events != nil {
			return s.addEvents(ctx, tx, up.Events(revoked))
		}
		return nil
	})
	if err != nil {
		return m, nil, err
	}
	return m, revoked, nil
}

// writeFactors turns the stored set old into next: deletes, inserts and
// updates only what differs.
func (s *Store) writeFactors(ctx context.Context, tx Tx, userID string, old, next []store.Factor) error {
	byID := make(map[string]store.Factor, len(old))
	for _, f := range old {
		byID[f.ID] = f
	}
	for _, f := range next {
		prev, ok := byID[f.ID]
		delete(byID, f.ID)
		var err error
		switch {
		case !ok:
			_, err = s.exec(ctx, tx, `INSERT INTO factors (`+FactorCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				f.ID, userID, f.Type, f.Label, f.Secret, nilIfEmpty(f.CredentialID), f.Counter, f.Active, NS(f.CreatedAt), NS(f.LastUsedAt))
		case !sameFactor(prev, f):
			_, err = s.exec(ctx, tx, `UPDATE factors SET label = ?, secret = ?, counter = ?, active = ?, last_used_at = ?
				WHERE id = ? AND user_id = ?`, f.Label, f.Secret, f.Counter, f.Active, NS(f.LastUsedAt), f.ID, userID)
		}
		if err != nil {
			return err
		}
	}
	for id := range byID {
		if _, err := s.exec(ctx, tx, `DELETE FROM factors WHERE id = ? AND user_id = ?`, id, userID); err != nil {
			return err
		}
	}
	return nil
}

// sameFactor reports whether the writable fields of a and b are equal.
func sameFactor(a, b store.Factor) bool {
	return a.Label == b.Label && bytes.Equal(a.Secret, b.Secret) && a.Counter == b.Counter &&
		a.Active == b.Active && a.LastUsedAt.Equal(b.LastUsedAt)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// writeCodes deletes the codes of old not in next and inserts the new ones.
func (s *Store) writeCodes(ctx context.Context, tx Tx, userID string, old, next [][]byte) error {
	for _, h := range old {
		if !slices.ContainsFunc(next, func(n []byte) bool { return bytes.Equal(n, h) }) {
			if _, err := s.exec(ctx, tx, `DELETE FROM recovery_codes WHERE user_id = ? AND hash = ?`, userID, h); err != nil {
				return err
			}
		}
	}
	for _, h := range next {
		if !slices.ContainsFunc(old, func(o []byte) bool { return bytes.Equal(o, h) }) {
			if _, err := s.exec(ctx, tx, `INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)`, userID, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) FindFactorByCredential(ctx context.Context, id []byte) (store.Factor, error) {
	f, err := ScanFactor(s.queryRow(ctx, s.db.Reader(), `SELECT `+FactorCols+` FROM factors WHERE credential = ?`, id))
	return f, s.wrap("find factor", err)
}

// --- tickets ---

func (s *Store) CreateTicket(ctx context.Context, t store.Ticket) error {
	data := t.Data
	if data == nil {
		data = []byte{}
	}
	_, err := s.exec(ctx, s.db.Writer(), `INSERT INTO tickets (`+TicketCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Kind, t.UserID, t.SessionID, data, t.Failures, NS(t.ExpiresAt))
	return s.wrap("create ticket", err)
}

func (s *Store) GetTicket(ctx context.Context, id []byte, now time.Time) (store.Ticket, error) {
	t, err := ScanTicket(s.queryRow(ctx, s.db.Reader(),
		`SELECT `+TicketCols+` FROM tickets WHERE id = ? AND expires_at > ?`, id, NS(now)))
	return t, s.wrap("get ticket", err)
}

func (s *Store) FailTicket(ctx context.Context, id []byte, max int) (dead bool, err error) {
	const what = "fail ticket"
	err = s.inTx(ctx, what, func(tx Tx) error {
		var n int
		err := s.mapErr(s.queryRow(ctx, tx, `UPDATE tickets SET failures = failures + 1 WHERE id = ? RETURNING failures`, id).Scan(&n))
		if errors.Is(err, store.ErrNotFound) {
			dead = true
			return nil
		}
		if err != nil {
			return s.wrap(what, err)
		}
		if n >= max {
			dead = true
			_, err = s.exec(ctx, tx, `DELETE FROM tickets WHERE id = ?`, id)
		}
		return s.wrap(what, err)
	})
	return dead, err
}

func (s *Store) ConsumeTicket(ctx context.Context, id []byte, now time.Time) (store.Ticket, error) {
	t, err := ScanTicket(s.queryRow(ctx, s.db.Writer(),
		`DELETE FROM tickets WHERE id = ? AND expires_at > ? RETURNING `+TicketCols, id, NS(now)))
	return t, s.wrap("consume ticket", err)
}

func (s *Store) PruneTickets(ctx context.Context, now time.Time) (int, error) {
	n, err := s.exec(ctx, s.db.Writer(), `DELETE FROM tickets WHERE expires_at <= ?`, NS(now))
	return int(n), s.wrap("prune tickets", err)
}
