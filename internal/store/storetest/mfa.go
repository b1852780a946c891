package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The contract of second factors and tickets (part of Run), and their
// guarantees under concurrency (part of RunConcurrency).

func factor(userID, typ string, active bool) store.Factor {
	f := store.Factor{ID: id(), UserID: userID, Type: typ, Label: "label " + typ, Secret: []byte("sealed " + id()),
		Active: active, CreatedAt: base}
	if typ == store.FactorWebAuthn {
		f.CredentialID = []byte("cred-" + id())
	}
	return f
}

func codes(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, []byte{byte(i), 'c', 'o', 'd', 'e'})
	}
	return out
}

// setMFA replaces the account's factors and codes.
func setMFA(factors []store.Factor, codes [][]byte) func(store.MFA) (store.MFAUpdate, error) {
	return func(store.MFA) (store.MFAUpdate, error) {
		return store.MFAUpdate{Factors: factors, RecoveryCodes: codes, Now: base}, nil
	}
}

func testMFA(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetMFA(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMFA(nobody) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.UpdateMFA(ctx, "nobody", setMFA(nil, nil)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateMFA(nobody) = %v, want ErrNotFound", err)
	}
	u := mkUser(t, s, "factors")
	// A pending factor does not turn MFA on.
	pending := factor(u.ID, store.FactorTOTP, false)
	if _, _, err := s.UpdateMFA(ctx, u.ID, setMFA([]store.Factor{pending}, nil)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUserByID(ctx, u.ID); got.MFA {
		t.Fatal("a pending factor set the user's MFA flag")
	}
	// Activated, with a passkey and codes: MFA on, everything read back.
	pending.Active, pending.Counter, pending.LastUsedAt = true, 57, base.Add(time.Second)
	key := factor(u.ID, store.FactorWebAuthn, true)
	key.CreatedAt = base.Add(time.Minute)
	m, _, err := s.UpdateMFA(ctx, u.ID, setMFA([]store.Factor{pending, key}, codes(10)))
	if err != nil || !m.User.MFA {
		t.Fatalf("UpdateMFA = %+v, %v", m.User, err)
	}
	got, err := s.GetMFA(ctx, u.ID)
	if err != nil || len(got.Factors) != 2 || len(got.RecoveryCodes) != 10 || !got.User.MFA {
		t.Fatalf("GetMFA = %+v, %v", got, err)
	}
	if f := got.Factors[0]; f.ID != pending.ID || f.Counter != 57 || !f.Active || !f.LastUsedAt.Equal(pending.LastUsedAt) ||
		!bytes.Equal(f.Secret, pending.Secret) || f.CredentialID != nil || f.Label != pending.Label || !f.CreatedAt.Equal(base) {
		t.Fatalf("TOTP factor read back: %+v", f)
	}
	if f := got.Factors[1]; f.ID != key.ID || !bytes.Equal(f.CredentialID, key.CredentialID) || f.Type != store.FactorWebAuthn {
		t.Fatalf("WebAuthn factor read back: %+v", f)
	}
	if f, err := s.FindFactorByCredential(ctx, key.CredentialID); err != nil || f.ID != key.ID || f.UserID != u.ID {
		t.Fatalf("FindFactorByCredential = %+v, %v", f, err)
	}
	if _, err := s.FindFactorByCredential(ctx, []byte("none")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("FindFactorByCredential(none) = %v", err)
	}
	// One credential belongs to one account.
	other := mkUser(t, s, "other-factors")
	dup := factor(other.ID, store.FactorWebAuthn, true)
	dup.CredentialID = key.CredentialID
	if _, _, err := s.UpdateMFA(ctx, other.ID, setMFA([]store.Factor{dup}, nil)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a credential registered twice: %v, want ErrAlreadyExists", err)
	}
	// An updater's error and ErrNoChange write nothing.
	refuse := errors.New("refused")
	if _, _, err := s.UpdateMFA(ctx, u.ID, func(store.MFA) (store.MFAUpdate, error) { return store.MFAUpdate{}, refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refusing updater: %v", err)
	}
	if m, _, err := s.UpdateMFA(ctx, u.ID, func(store.MFA) (store.MFAUpdate, error) { return store.MFAUpdate{}, store.ErrNoChange }); err != nil || len(m.Factors) != 2 {
		t.Fatalf("ErrNoChange: %+v, %v", m, err)
	}
	// A spent ticket rolls the whole update back.
	if _, _, err := s.UpdateMFA(ctx, u.ID, func(old store.MFA) (store.MFAUpdate, error) {
		return store.MFAUpdate{Factors: old.Factors[:1], RecoveryCodes: nil, ConsumeTickets: [][]byte{[]byte("no-such-ticket")}, Now: base}, nil
	}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update with a missing ticket: %v, want ErrConflict", err)
	}
	if got, _ := s.GetMFA(ctx, u.ID); len(got.Factors) != 2 || len(got.RecoveryCodes) != 10 {
		t.Fatalf("a conflicting update wrote: %d factors, %d codes", len(got.Factors), len(got.RecoveryCodes))
	}
	// One code used, the passkey removed, sessions revoked with events.
	x := mkSession(t, s, u.ID, base)
	keep := mkSession(t, s, u.ID, base)
	m, revoked, err := s.UpdateMFA(ctx, u.ID, func(old store.MFA) (store.MFAUpdate, error) {
		return store.MFAUpdate{Factors: old.Factors[:1], RecoveryCodes: old.RecoveryCodes[1:], RevokeSessions: true,
			ExceptSession: keep.ID, Reason: "mfa_removed", Now: base.Add(time.Minute),
			Events: func(r []store.RevokedSession) []store.Event {
				return []store.Event{{ID: id(), Type: "mfa_removed", At: base, UserID: u.ID}}
			}}, nil
	})
	if err != nil || len(revoked) != 1 || revoked[0].SessionID != x.ID || len(m.Factors) != 1 || len(m.RecoveryCodes) != 9 || !m.User.MFA {
		t.Fatalf("remove: %+v %v %v", m, revoked, err)
	}
	if sx, _ := s.GetSession(ctx, x.ID); !sx.Revoked() {
		t.Fatal("session not revoked")
	}
	if evs, _ := s.ListEvents(ctx, store.EventFilter{Type: "mfa_removed", Limit: 5}); len(evs) != 1 {
		t.Fatalf("events committed: %d", len(evs))
	}
	// The last factor removed: MFA off.
	if m, _, err := s.UpdateMFA(ctx, u.ID, setMFA(nil, nil)); err != nil || m.User.MFA {
		t.Fatalf("no factor left: %+v, %v", m.User, err)
	}
	if got, _ := s.GetUserByID(ctx, u.ID); got.MFA {
		t.Fatal("MFA flag kept without a factor")
	}
	// Deleting the account deletes its factors, codes and tickets.
	if _, _, err := s.UpdateMFA(ctx, u.ID, setMFA([]store.Factor{factor(u.ID, store.FactorTOTP, true)}, codes(2))); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTicket(ctx, store.Ticket{ID: []byte("t-" + u.ID), Kind: store.TicketMFA, UserID: u.ID, ExpiresAt: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, u.ID, store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}, base, nil); err != nil {
		t.Fatalf("delete an account with factors: %v", err)
	}
	if _, err := s.GetTicket(ctx, []byte("t-"+u.ID), base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted account's ticket: %v", err)
	}
}

func testTickets(t *testing.T, s store.Store) {
	ctx := context.Background()
	tk := store.Ticket{ID: []byte(id()), Kind: store.TicketMFA, UserID: "u1", SessionID: "s1", Data: []byte("data"), ExpiresAt: base.Add(5 * time.Minute)}
	if err := s.CreateTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTicket(ctx, tk); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a ticket id twice: %v", err)
	}
	got, err := s.GetTicket(ctx, tk.ID, base)
	if err != nil || got.Kind != tk.Kind || got.UserID != "u1" || got.SessionID != "s1" || string(got.Data) != "data" || !got.ExpiresAt.Equal(tk.ExpiresAt) {
		t.Fatalf("GetTicket = %+v, %v", got, err)
	}
	if _, err := s.GetTicket(ctx, tk.ID, tk.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired ticket: %v", err)
	}
	for i := 1; i <= 3; i++ {
		dead, err := s.FailTicket(ctx, tk.ID, 3)
		if err != nil || dead != (i == 3) {
			t.Fatalf("failure %d: dead %v, %v", i, dead, err)
		}
	}
	if _, err := s.GetTicket(ctx, tk.ID, base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a ticket after its last failure: %v", err)
	}
	if dead, err := s.FailTicket(ctx, tk.ID, 3); err != nil || !dead {
		t.Fatalf("failing a gone ticket: %v %v", dead, err)
	}
	tk.ID = []byte(id())
	s.CreateTicket(ctx, tk)
	if _, err := s.ConsumeTicket(ctx, tk.ID, tk.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("consuming an expired ticket: %v", err)
	}
	if got, err := s.ConsumeTicket(ctx, tk.ID, base); err != nil || got.UserID != "u1" {
		t.Fatalf("ConsumeTicket = %+v, %v", got, err)
	}
	if _, err := s.ConsumeTicket(ctx, tk.ID, base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a ticket consumed twice: %v", err)
	}
	old := store.Ticket{ID: []byte(id()), Kind: store.TicketElevation, ExpiresAt: base}
	s.CreateTicket(ctx, old)
	if n, err := s.PruneTickets(ctx, base.Add(time.Second)); err != nil || n < 1 {
		t.Fatalf("PruneTickets = %d, %v", n, err)
	}
}

// Racing uses of one recovery code, and of one ticket through UpdateMFA
// and ConsumeTicket: exactly one wins each time.
func testMFAConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "mfa-racer")
	if _, _, err := s.UpdateMFA(ctx, u.ID, setMFA([]store.Factor{factor(u.ID, store.FactorTOTP, true)}, codes(10))); err != nil {
		t.Fatal(err)
	}
	const n = 10
	spent := errors.New("code already used")
	race := func(f func(i int) error) (won int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			wg.Go(func() {
				if err := f(i); err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, spent) && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("racer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		return won
	}
	useCode := func(code []byte, tickets ...[]byte) func(store.MFA) (store.MFAUpdate, error) {
		return func(old store.MFA) (store.MFAUpdate, error) {
			i := slices.IndexFunc(old.RecoveryCodes, func(c []byte) bool { return bytes.Equal(c, code) })
			if i < 0 {
				return store.MFAUpdate{}, spent
			}
			return store.MFAUpdate{Factors: old.Factors, RecoveryCodes: slices.Delete(slices.Clone(old.RecoveryCodes), i, i+1),
				ConsumeTickets: tickets, Now: base}, nil
		}
	}
	code := codes(10)[4]
	if won := race(func(int) error { _, _, err := s.UpdateMFA(ctx, u.ID, useCode(code)); return err }); won != 1 {
		t.Fatalf("one recovery code used by %d at once: %d won", n, won)
	}
	if m, _ := s.GetMFA(ctx, u.ID); len(m.RecoveryCodes) != 9 {
		t.Fatalf("codes left: %d, want 9", len(m.RecoveryCodes))
	}
	// Different codes, one ticket: one wins, the others change nothing.
	tk := store.Ticket{ID: []byte(id()), Kind: store.TicketMFA, UserID: u.ID, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	all := codes(10)
	if won := race(func(i int) error {
		if i == 4 {
			return spent
		}
		_, _, err := s.UpdateMFA(ctx, u.ID, useCode(all[i], tk.ID))
		return err
	}); won != 1 {
		t.Fatalf("one ticket used by %d at once: %d won", n-1, won)
	}
	if m, _ := s.GetMFA(ctx, u.ID); len(m.RecoveryCodes) != 8 {
		t.Fatalf("codes left after the ticket race: %d, want 8 (the losers wrote nothing)", len(m.RecoveryCodes))
	}
	// ConsumeTicket alone: one consumer.
	tk.ID = []byte(id())
	s.CreateTicket(ctx, tk)
	if won := race(func(int) error { _, err := s.ConsumeTicket(ctx, tk.ID, base); return err }); won != 1 {
		t.Fatalf("one ticket consumed by %d at once: %d won", n, won)
	}
	// Counters advanced by compare in the updater: no step is accepted
	// twice, whatever the interleaving.
	var accepted sync.Map
	race(func(i int) error {
		step := int64(100 + i%3) // three distinct steps, each tried by several racers
		_, _, err := s.UpdateMFA(ctx, u.ID, func(old store.MFA) (store.MFAUpdate, error) {
			f := slices.Clone(old.Factors)
			if step <= f[0].Counter {
				return store.MFAUpdate{}, spent
			}
			f[0].Counter = step
			return store.MFAUpdate{Factors: f, RecoveryCodes: old.RecoveryCodes, Now: base}, nil
		})
		if err == nil {
			if _, dup := accepted.LoadOrStore(step, i); dup {
				t.Errorf("step %d accepted twice", step)
			}
		}
		return err
	})
}
