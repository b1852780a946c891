package auth

// Second factors: what a proof is worth (amr, acr), the single-use tickets
// between the steps of a flow, and the store methods they need. The factor
// flows are in factors.go (enrolment, removal, recovery codes), the login's
// second step in mfalogin.go, the codes in totp.go.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// mfaStore is what the second-factor flows need of the store.
type mfaStore interface {
	GetMFA(ctx context.Context, userID string) (store.MFA, error)
	UpdateMFA(ctx context.Context, userID string, update func(old store.MFA) (store.MFAUpdate, error)) (store.MFA, []store.RevokedSession, error)
	FindFactorByCredential(ctx context.Context, id []byte) (store.Factor, error)
	CreateTicket(ctx context.Context, t store.Ticket) error
	GetTicket(ctx context.Context, id []byte, now time.Time) (store.Ticket, error)
	FailTicket(ctx context.Context, id []byte, max int) (bool, error)
	ConsumeTicket(ctx context.Context, id []byte, now time.Time) (store.Ticket, error)
	PruneTickets(ctx context.Context, now time.Time) (int, error)
}

// Assurance levels (acr) and methods (amr, RFC 8176).
const (
	ACR1 = "aal1"
	ACR2 = "aal2" // two factors

	AMRPassword = "pwd"
	AMROTP      = "otp"  // a TOTP or a recovery code
	AMRHardware = "hwk"  // a passkey
	AMRUser     = "user" // the authenticator verified the person (PIN, biometrics)
	AMRMFA      = "mfa"
)

// Limits of the second-factor flows.
const (
	mfaTicketTTL       = 5 * time.Minute
	mfaTicketFailures  = 5 // wrong codes that kill an mfa_token
	elevationTTL       = 60 * time.Second
	maxFactors         = 10 // per account, pending ones included
	maxFactorLabel     = 64
	recoveryCodeCount  = 10
	MFATokenPrefix     = "ghm_"
	ElevationPrefix    = "ghe_"
	webauthnChallenges = 5 * time.Minute
)

// proof is what a set of methods proven at at is worth: two factors (a
// password and something held, or a passkey that verified its user) are
// aal2, with "mfa" among the methods.
func proof(at time.Time, methods ...string) store.Proof {
	has := func(m string) bool { return slices.Contains(methods, m) }
	p := store.Proof{At: at, AMR: slices.Clone(methods), ACR: ACR1}
	if (has(AMRPassword) && (has(AMROTP) || has(AMRHardware))) || (has(AMRHardware) && has(AMRUser)) {
		p.AMR = append(p.AMR, AMRMFA)
		p.ACR = ACR2
	}
	return p
}

// sessionAMR and sessionACR are a session's proof as its tokens carry it
// (sessions of releases before second factors proved a password).
func sessionAMR(sess store.Session) []string {
	if len(sess.AMR) == 0 {
		return []string{AMRPassword}
	}
	return sess.AMR
}

func sessionACR(sess store.Session) string {
	if sess.ACR == "" {
		return ACR1
	}
	return sess.ACR
}

// FactorRef names a factor to a client choosing one (no secret).
type FactorRef struct {
	ID, Type, Label string
}

// MFARequiredError is ErrMFARequired with the single-use ticket that
// continues the login at POST /v1/auth/mfa, and the factors to choose from.
type MFARequiredError struct {
	Token   string
	Factors []FactorRef
}

func (e *MFARequiredError) Error() string        { return "a second factor is required" }
func (e *MFARequiredError) Is(target error) bool { return target == ErrMFARequired }

// newTicket makes a random token with prefix and the ticket storing its
// hash.
func (s *Service) newTicket(prefix, kind, userID, sessionID string, data []byte, ttl time.Duration) (string, store.Ticket) {
	tok := prefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	return tok, store.Ticket{ID: ticketID(tok), Kind: kind, UserID: userID, SessionID: sessionID,
		Data: data, ExpiresAt: s.now().Add(ttl)}
}

// ticketID is the stored form of a ticket token: its SHA-256 (the token is
// 256 random bits, so a fast hash is enough).
func ticketID(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// validTicketToken reports whether tok has the shape of a ticket of prefix
// (checked before any database work).
func validTicketToken(tok, prefix string) bool {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	return err == nil
}

// derivedKey is a subkey of the factor key for one purpose.
func derivedKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("gatehouse/factors/" + purpose))
	return m.Sum(nil)
}

// errWrongFactor, from an updater, means the code or assertion proved
// nothing: the flow counts a failure and answers ErrInvalidMFACode.
var errWrongFactor = errors.New("wrong second factor")

// activeRefs lists an account's active factors for a client to choose.
func activeRefs(m store.MFA) []FactorRef {
	var out []FactorRef
	for _, f := range m.Factors {
		if f.Active {
			out = append(out, FactorRef{ID: f.ID, Type: f.Type, Label: f.Label})
		}
	}
	return out
}
