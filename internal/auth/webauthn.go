package auth

// Passkeys (WebAuthn Level 3, through go-webauthn): registration as a
// factor, an assertion as the second step of a login or a
// re-authentication, and sign-in without a password. Every ceremony's
// challenge is a single-use ticket (its hash is the ticket's id) bound to
// the ceremony and the account; the signature counter is checked and
// advanced in the transaction that accepts the assertion.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// WebAuthn ceremonies a challenge is bound to.
const (
	webauthnRegister = "register"
	webauthnMFA      = "mfa"     // the second step of a login
	webauthnReauth   = "reauth"  // a re-authentication
	webauthnPasskey  = "passkey" // sign-in without a password
)

// maxWebAuthnBody bounds a WebAuthn response before it is parsed (the
// HTTP layer bounds bodies at 64 KiB already).
const maxWebAuthnBody = 32 << 10

// challengeData is what a WebAuthn ticket keeps between the options and
// the response.
type challengeData struct {
	Ceremony string               `json:"ceremony"`
	Label    string               `json:"label,omitempty"`
	Session  webauthn.SessionData `json:"session"`
}

// waUser is an account as go-webauthn sees it: the user handle is the
// account id, the credentials its active passkeys.
type waUser struct {
	u       store.User
	factors []store.Factor
}

func (w waUser) WebAuthnID() []byte          { return []byte(w.u.ID) }
func (w waUser) WebAuthnName() string        { return w.u.Username }
func (w waUser) WebAuthnDisplayName() string { return w.u.Username }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	var out []webauthn.Credential
	for _, f := range w.factors {
		if c, ok := credentialOf(f); ok {
			out = append(out, c)
		}
	}
	return out
}

// credentialOf decodes an active passkey factor; the stored counter is
// the one the store advances, so it wins over the encoded one.
func credentialOf(f store.Factor) (webauthn.Credential, bool) {
	var c webauthn.Credential
	if f.Type != store.FactorWebAuthn || !f.Active || json.Unmarshal(f.Secret, &c) != nil {
		return c, false
	}
	c.Authenticator.SignCount = uint32(f.Counter)
	return c, true
}

// newWebAuthn builds the relying party: the RP ID and the origins allowed
// to use it (the issuer's, and each allowed origin that is the RP ID or
// under it).
func newWebAuthn(rpID string, origins []string) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID: rpID, RPDisplayName: rpID, RPOrigins: origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
	})
}

// CheckWebAuthn reports whether the passkey configuration of cfg (its RP ID
// and the origins it leaves) is one the relying party accepts: serve
// refuses to start otherwise.
func CheckWebAuthn(cfg Config) error {
	rpID := cfg.WebAuthnRPID
	if rpID == "" {
		rpID = totpIssuer(cfg.Issuer)
	}
	cfg.WebAuthnRPID = rpID
	origins := webauthnOrigins(cfg)
	if len(origins) == 0 {
		return fmt.Errorf("webauthn: neither the issuer nor an allowed origin is at or under the RP ID %q", rpID)
	}
	_, err := newWebAuthn(rpID, origins)
	return err
}

// errNoPasskeys: the relying party is not configured.
var errNoPasskeys = fmt.Errorf("%w: passkeys are not configured on this server", ErrInvalidRequest)

// webauthnOrigins are the origins passkeys may be used from: the issuer's,
// and each configured origin whose host is the RP ID or under it.
func webauthnOrigins(cfg Config) []string {
	var out []string
	for _, o := range append([]string{cfg.Issuer}, cfg.WebAuthnOrigins...) {
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		if err != nil || u.Host == "" {
			continue
		}
		h := u.Hostname()
		if h == cfg.WebAuthnRPID || strings.HasSuffix(h, "."+cfg.WebAuthnRPID) {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}

// storeChallenge keeps a ceremony's session data as a ticket whose id is
// the challenge's hash: the response names its challenge, and the ticket
// is found (and spent) by it.
func (s *Service) storeChallenge(ctx context.Context, ceremony, userID, sessionID, label string, sd *webauthn.SessionData) error {
	sd.Expires = s.now().Add(webauthnChallenges) // the ticket's expiry is the one enforced
	data, err := json.Marshal(challengeData{Ceremony: ceremony, Label: label, Session: *sd})
	if err != nil {
		return err
	}
	return s.mfa.CreateTicket(ctx, store.Ticket{ID: ticketID(sd.Challenge), Kind: store.TicketWebAuthn,
		UserID: userID, SessionID: sessionID, Data: data, ExpiresAt: sd.Expires})
}

// spendChallenge consumes the challenge a response names, if it was
// issued for ceremony to userID (any account for a passkey sign-in) and
// sessionID; ok is false otherwise (spent, expired, another ceremony).
func (s *Service) spendChallenge(ctx context.Context, challenge, ceremony, userID, sessionID string) (webauthn.SessionData, string, bool, error) {
	t, err := s.mfa.ConsumeTicket(ctx, ticketID(challenge), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return webauthn.SessionData{}, "", false, nil
	} else if err != nil {
		return webauthn.SessionData{}, "", false, err
	}
	var cd challengeData
	if t.Kind != store.TicketWebAuthn || json.Unmarshal(t.Data, &cd) != nil || cd.Ceremony != ceremony ||
		(ceremony != webauthnPasskey && t.UserID != userID) || t.SessionID != sessionID {
		return webauthn.SessionData{}, "", false, nil
	}
	// The ticket's expiry, on the service's clock, is the one enforced;
	// the library would compare with the wall clock.
	cd.Session.Expires = time.Time{}
	return cd.Session, cd.Label, true, nil
}

// WebAuthnRegisterOptions begins registering a passkey for the caller:
// PublicKeyCredentialCreationOptions with a single-use challenge.
func (s *Service) WebAuthnRegisterOptions(ctx context.Context, p Principal, label string) (any, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	label, err := factorLabel(label, "Passkey")
	if err != nil {
		return nil, err
	}
	m, err := s.mfa.GetMFA(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrTokenRevoked
	} else if err != nil {
		return nil, err
	}
	if len(m.Factors) >= maxFactors {
		return nil, fmt.Errorf("%w: an account has at most %d factors; remove one first", ErrInvalidRequest, maxFactors)
	}
	user := waUser{m.User, m.Factors}
	var exclude []protocol.CredentialDescriptor
	for _, c := range user.WebAuthnCredentials() {
		exclude = append(exclude, c.Descriptor())
	}
	creation, sd, err := s.webauthn.BeginRegistration(user, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, fmt.Errorf("webauthn registration options: %w", err)
	}
	if err := s.storeChallenge(ctx, webauthnRegister, p.UserID, p.SessionID, label, sd); err != nil {
		return nil, err
	}
	return creation.Response, nil
}

// EnrollWebAuthn finishes a registration: the attestation response
// (PublicKeyCredential.toJSON()) to the caller's challenge becomes an
// active factor. The account's first active factor comes with its recovery
// codes, returned once.
func (s *Service) EnrollWebAuthn(ctx context.Context, p Principal, body []byte, m Meta) (store.Factor, []string, error) {
	if s.webauthn == nil {
		return store.Factor{}, nil, errNoPasskeys
	}
	m = m.clean()
	parsed, err := parseCreation(body)
	if err != nil {
		return store.Factor{}, nil, err
	}
	sd, label, ok, err := s.spendChallenge(ctx, parsed.Response.CollectedClientData.Challenge, webauthnRegister, p.UserID, p.SessionID)
	if err != nil {
		return store.Factor{}, nil, err
	}
	if !ok {
		return store.Factor{}, nil, ErrInvalidMFACode
	}
	cur, err := s.mfa.GetMFA(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Factor{}, nil, ErrTokenRevoked
	} else if err != nil {
		return store.Factor{}, nil, err
	}
	cred, err := s.webauthn.CreateCredential(waUser{cur.User, cur.Factors}, sd, parsed)
	if err != nil {
		s.event(ctx, EventMFAFailed, m, p.UserID, p.SessionID, "passkey registration refused")
		return store.Factor{}, nil, ErrInvalidMFACode
	}
	secret, err := json.Marshal(cred)
	if err != nil {
		return store.Factor{}, nil, err
	}
	now := s.now()
	f := store.Factor{ID: newID(), UserID: p.UserID, Type: store.FactorWebAuthn, Label: label, Secret: secret,
		CredentialID: cred.ID, Counter: int64(cred.Authenticator.SignCount), Active: true, CreatedAt: now}
	var codes []string
	var enrolled store.Event
	_, _, err = s.mfa.UpdateMFA(ctx, p.UserID, func(old store.MFA) (store.MFAUpdate, error) {
		if len(old.Factors) >= maxFactors {
			return store.MFAUpdate{}, fmt.Errorf("%w: an account has at most %d factors; remove one first", ErrInvalidRequest, maxFactors)
		}
		up := store.MFAUpdate{Factors: append(slices.Clone(old.Factors), f), RecoveryCodes: old.RecoveryCodes, Now: now}
		if !old.Active() {
			var hashes [][]byte
			codes, hashes = s.newRecoveryCodes(p.UserID)
			up.RecoveryCodes = hashes
		}
		up.Events = func([]store.RevokedSession) []store.Event {
			enrolled = s.newEvent(EventMFAEnrolled, m, p.UserID, p.SessionID, "webauthn "+f.ID)
			return []store.Event{enrolled}
		}
		return up, nil
	})
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return store.Factor{}, nil, fmt.Errorf("%w: that passkey is registered already", ErrInvalidRequest)
	case errors.Is(err, store.ErrNotFound):
		return store.Factor{}, nil, ErrTokenRevoked
	case err != nil:
		return store.Factor{}, nil, err
	}
	s.announce(ctx, enrolled)
	return f, codes, nil
}

// assertionOptions begins an assertion for u's passkeys.
func (s *Service) assertionOptions(ctx context.Context, u store.User, sessionID, ceremony string) (any, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	m, err := s.mfa.GetMFA(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	user := waUser{m.User, m.Factors}
	if len(user.WebAuthnCredentials()) == 0 {
		return nil, fmt.Errorf("%w: this account has no passkey", ErrInvalidRequest)
	}
	assertion, sd, err := s.webauthn.BeginLogin(user)
	if err != nil {
		return nil, fmt.Errorf("webauthn assertion options: %w", err)
	}
	if err := s.storeChallenge(ctx, ceremony, u.ID, sessionID, "", sd); err != nil {
		return nil, err
	}
	return assertion.Response, nil
}

// MFAWebAuthnOptions begins the passkey answer to a login's mfa_token.
func (s *Service) MFAWebAuthnOptions(ctx context.Context, tok string) (any, error) {
	if !validTicketToken(tok, MFATokenPrefix) {
		return nil, ErrInvalidToken
	}
	t, err := s.mfa.GetTicket(ctx, ticketID(tok), s.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.TicketMFA) {
		return nil, ErrInvalidToken
	} else if err != nil {
		return nil, err
	}
	u, err := s.accounts.GetUserByID(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalidToken
	} else if err != nil {
		return nil, err
	}
	return s.assertionOptions(ctx, u, "", webauthnMFA)
}

// ReauthWebAuthnOptions begins a re-authentication with a passkey.
func (s *Service) ReauthWebAuthnOptions(ctx context.Context, p Principal) (any, error) {
	u, err := s.accounts.GetUserByID(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrTokenRevoked
	} else if err != nil {
		return nil, err
	}
	return s.assertionOptions(ctx, u, p.SessionID, webauthnReauth)
}

// useAssertion verifies a WebAuthn assertion for ceremony against u's
// passkeys and, in one UpdateMFA, checks and advances the credential's
// signature counter (a counter that does not move forward is a cloned
// authenticator: refused and recorded) and consumes the tickets consume.
func (s *Service) useAssertion(ctx context.Context, u store.User, sessionID string, body []byte, ceremony string, consume [][]byte, m Meta) ([]string, []store.Event, error) {
	if s.webauthn == nil {
		return nil, nil, errNoPasskeys
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return nil, nil, err
	}
	sd, _, ok, err := s.spendChallenge(ctx, parsed.Response.CollectedClientData.Challenge, ceremony, u.ID, sessionID)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errWrongFactor
	}
	cur, err := s.mfa.GetMFA(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	cred, err := s.webauthn.ValidateLogin(waUser{cur.User, cur.Factors}, sd, parsed)
	if err != nil {
		return nil, nil, errWrongFactor
	}
	methods := []string{AMRHardware}
	if parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		methods = append(methods, AMRUser)
	}
	events, err := s.advanceCounter(ctx, u.ID, sessionID, parsed.RawID, parsed.Response.AuthenticatorData.Counter, cred, consume, m)
	return methods, events, err
}

// errCloned: the assertion's signature counter did not move forward.
var errCloned = fmt.Errorf("%w: signature counter went backwards", errWrongFactor)

// advanceCounter records a verified assertion of credential id with
// counter: refused if the counter does not exceed the stored one (unless
// the authenticator keeps none: both zero), in the transaction that
// consumes the tickets.
func (s *Service) advanceCounter(ctx context.Context, userID, sessionID string, id []byte, counter uint32, cred *webauthn.Credential, consume [][]byte, m Meta) ([]store.Event, error) {
	var events []store.Event
	var cloned store.Factor
	_, _, err := s.mfa.UpdateMFA(ctx, userID, func(old store.MFA) (store.MFAUpdate, error) {
		now := s.now()
		i := slices.IndexFunc(old.Factors, func(f store.Factor) bool {
			return f.Type == store.FactorWebAuthn && f.Active && bytes.Equal(f.CredentialID, id)
		})
		if i < 0 {
			return store.MFAUpdate{}, errWrongFactor // removed meanwhile
		}
		f := old.Factors[i]
		if int64(counter) <= f.Counter && (counter != 0 || f.Counter != 0) {
			cloned = f
			return store.MFAUpdate{}, errCloned
		}
		cred.Authenticator.SignCount, cred.Authenticator.CloneWarning = counter, false
		secret, err := json.Marshal(cred)
		if err != nil {
			return store.MFAUpdate{}, err
		}
		f.Counter, f.LastUsedAt, f.Secret = int64(counter), now, secret
		next := slices.Clone(old.Factors)
		next[i] = f
		events = []store.Event{s.newEvent(EventMFASucceeded, m, userID, sessionID, "webauthn "+f.ID)}
		return store.MFAUpdate{Factors: next, RecoveryCodes: old.RecoveryCodes, ConsumeTickets: consume, Now: now,
			Events: func([]store.RevokedSession) []store.Event { return events }}, nil
	})
	if errors.Is(err, errCloned) {
		s.event(ctx, EventWebAuthnCloneSuspected, m, userID, sessionID,
			fmt.Sprintf("webauthn %s: counter %d after %d", cloned.ID, counter, cloned.Counter))
	}
	return events, err
}

// PasskeyOptions begins a sign-in without a password: request options for
// discoverable credentials, user verification required.
func (s *Service) PasskeyOptions(ctx context.Context) (any, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	assertion, sd, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("passkey options: %w", err)
	}
	if err := s.storeChallenge(ctx, webauthnPasskey, "", "", "", sd); err != nil {
		return nil, err
	}
	return assertion.Response, nil
}

// PasskeyLogin signs in with a discoverable passkey that verified its
// user: a session of aal2 (amr hwk, user, mfa) without a password. Any
// failure is ErrInvalidCredentials, like a wrong password.
func (s *Service) PasskeyLogin(ctx context.Context, body []byte, m Meta) (Tokens, error) {
	if s.webauthn == nil {
		return Tokens{}, errNoPasskeys
	}
	m = m.clean()
	parsed, err := parseAssertion(body)
	if err != nil {
		return Tokens{}, err
	}
	userID := string(parsed.Response.UserHandle)
	sd, _, ok, err := s.spendChallenge(ctx, parsed.Response.CollectedClientData.Challenge, webauthnPasskey, "", "")
	if err != nil {
		return Tokens{}, err
	}
	if !ok || !validID(userID) { // the handle is the client's bytes: never sent to the store unchecked
		return Tokens{}, ErrInvalidCredentials
	}
	cur, err := s.mfa.GetMFA(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return Tokens{}, ErrInvalidCredentials
	} else if err != nil {
		return Tokens{}, err
	}
	u := cur.User
	done, err := s.reserveAttempt(ctx, u, m)
	if err != nil {
		return Tokens{}, err
	}
	events, err := func() ([]store.Event, error) {
		_, cred, err := s.webauthn.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
			if string(handle) != u.ID {
				return nil, errors.New("unknown user handle")
			}
			return waUser{u, cur.Factors}, nil
		}, sd, parsed)
		if err != nil || !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
			return nil, errWrongFactor
		}
		return s.advanceCounter(ctx, u.ID, "", parsed.RawID, parsed.Response.AuthenticatorData.Counter, cred, nil, m)
	}()
	done(err)
	if errors.Is(err, errWrongFactor) {
		s.event(ctx, EventLoginFailed, m, u.ID, "", "passkey sign-in refused")
		return Tokens{}, ErrInvalidCredentials
	} else if err != nil {
		return Tokens{}, err
	}
	s.announce(ctx, events...)
	if u.Disabled {
		s.event(ctx, EventLoginFailed, m, u.ID, "", "account disabled")
		return Tokens{}, ErrAccountDisabled
	}
	return s.openSession(ctx, u, proof(s.now(), AMRHardware, AMRUser), m, false)
}

// parseCreation and parseAssertion parse a client's WebAuthn JSON: bad
// input is ErrInvalidRequest, never a panic or a 5xx.
func parseCreation(body []byte) (*protocol.ParsedCredentialCreationData, error) {
	if len(body) == 0 || len(body) > maxWebAuthnBody {
		return nil, fmt.Errorf("%w: a WebAuthn attestation response is required", ErrInvalidRequest)
	}
	p, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed WebAuthn attestation response", ErrInvalidRequest)
	}
	return p, nil
}

func parseAssertion(body []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(body) == 0 || len(body) > maxWebAuthnBody {
		return nil, fmt.Errorf("%w: a WebAuthn assertion is required", ErrInvalidRequest)
	}
	p, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed WebAuthn assertion", ErrInvalidRequest)
	}
	return p, nil
}
