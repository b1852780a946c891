package store

import (
	"context"
	"time"
)

// Factor types.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
)

// Factor is a second factor of an account.
type Factor struct {
	ID     string
	UserID string
	Type   string // FactorTOTP or FactorWebAuthn
	Label  string
	// Secret is, for TOTP, the shared secret sealed under the master
	// secret (the store only keeps bytes); for WebAuthn, the credential
	// (public key, flags, counter) as the domain encodes it.
	Secret []byte
	// CredentialID is a WebAuthn credential's id (unique across accounts);
	// nil for TOTP.
	CredentialID []byte
	// Counter is, for TOTP, the last accepted time step (a code of this
	// step or an earlier one is refused: replay); for WebAuthn, the
	// authenticator's signature counter.
	Counter    int64
	Active     bool // TOTP factors are pending until a first code proves them
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used
}

// MFA is an account's second factors as an updater sees them: read in the
// transaction that will write the update, with the account's row locked,
// so no other change of them can interleave.
type MFA struct {
	User    User
	Factors []Factor // oldest first
	// RecoveryCodes are the hashes of the account's unused recovery codes.
	RecoveryCodes [][]byte
}

// Active reports whether the account has an active factor.
func (m MFA) Active() bool {
	for _, f := range m.Factors {
		if f.Active {
			return true
		}
	}
	return false
}

// MFAUpdate is what an MFA updater decides: the account's factors and
// recovery codes as they are to be, and what commits with them.
type MFAUpdate struct {
	// Factors is the whole set as it is to be: a factor of the old set
	// that is absent is deleted, a new one inserted, a changed one written.
	Factors []Factor
	// RecoveryCodes is the whole set of unused codes' hashes as it is to be.
	RecoveryCodes [][]byte
	// ConsumeTickets are deleted in the transaction; if any of them is no
	// longer there or has expired at Now, the whole update fails with
	// ErrConflict and nothing is written (another request spent it).
	ConsumeTickets [][]byte
	// RevokeSessions revokes every live session of the user but
	// ExceptSession, with Reason, at Now.
	RevokeSessions bool
	ExceptSession  string
	Reason         string
	Now            time.Time
	// Events, if set, gives the security events recording the change, from
	// the sessions it revoked; they commit with it.
	Events func(revoked []RevokedSession) []Event
}

// Ticket kinds.
const (
	// TicketMFA is the state between a right password and the second
	// factor (the mfa_token): it opens nothing but POST /v1/auth/mfa.
	TicketMFA = "mfa"
	// TicketWebAuthn is a WebAuthn ceremony's challenge and its session
	// data; its Data says which ceremony.
	TicketWebAuthn = "webauthn"
	// TicketElevation is a one-time elevation of a session for one
	// sensitive request.
	TicketElevation = "elevation"
)

// Ticket is a short-lived, single-use credential. Only a hash of it is
// stored (its ID): the tokens are 256-bit random strings, so a database
// leak yields none.
type Ticket struct {
	ID        []byte // SHA-256 of the token
	Kind      string
	UserID    string // "" when not yet known (a passkey sign-in's challenge)
	SessionID string // the session it is bound to, if any
	Data      []byte // what the flow keeps between its steps
	Failures  int    // wrong answers so far
	ExpiresAt time.Time
}

// MFAStore is the persistence of second factors and tickets. Every
// backend implements it with Store.
type MFAStore interface {
	// GetMFA reads the account's factors and recovery codes (no lock).
	// ErrNotFound if the user does not exist.
	GetMFA(ctx context.Context, userID string) (MFA, error)
	// UpdateMFA is the read-modify-write of an account's second factors
	// (Dex's pattern): in one transaction it locks the user's row, reads
	// its factors and codes, calls update with them and writes what update
	// decides, with its consequences; the user's MFA flag becomes whether
	// an active factor remains. Two racing uses of one code or one ticket:
	// exactly one is accepted, the other sees the first's result. It
	// returns the state as written (as read, if update returned
	// ErrNoChange) and the sessions it revoked. ErrNotFound if the user
	// does not exist; an error of update is returned as it is, with
	// nothing written.
	UpdateMFA(ctx context.Context, userID string, update func(old MFA) (MFAUpdate, error)) (MFA, []RevokedSession, error)
	// FindFactorByCredential finds the WebAuthn factor whose credential id
	// is id; ErrNotFound if none.
	FindFactorByCredential(ctx context.Context, id []byte) (Factor, error)

	// CreateTicket stores t; ErrAlreadyExists if its ID is taken.
	CreateTicket(ctx context.Context, t Ticket) error
	// GetTicket returns the ticket if it exists and has not expired at
	// now; ErrNotFound otherwise.
	GetTicket(ctx context.Context, id []byte, now time.Time) (Ticket, error)
	// FailTicket counts a wrong answer against the ticket and deletes it
	// once it has max failures. It reports whether the ticket is gone.
	FailTicket(ctx context.Context, id []byte, max int) (dead bool, err error)
	// ConsumeTicket deletes the ticket and returns it, if it exists and
	// has not expired at now; ErrNotFound otherwise. Of racing consumers,
	// exactly one gets it.
	ConsumeTicket(ctx context.Context, id []byte, now time.Time) (Ticket, error)
	// PruneTickets drops tickets expired before now.
	PruneTickets(ctx context.Context, now time.Time) (int, error)
}
