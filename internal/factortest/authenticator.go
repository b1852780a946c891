// Package factortest holds second factors for tests: a software WebAuthn
// authenticator, and TOTP codes computed from RFC 6238 itself.
//
// The authenticator
// answers the creation and request options a relying party sends with the
// JSON a browser's PublicKeyCredential.toJSON() would give (ES256 keys,
// "none" attestation), so the server's ceremonies can be driven over HTTP
// without a browser. It is a test double of an authenticator, not of the
// server: the verification under test is go-webauthn's, unchanged. The
// browser itself is tested with Chromium's virtual authenticator.
package factortest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator holds one credential (after Register).
type Authenticator struct {
	// Origin is the page's origin the client data names.
	Origin string
	// UV is whether the authenticator verifies its user (flag UV).
	UV bool
	// Counter is the signature counter; each assertion increments it
	// first. Set it back to act as a clone.
	Counter uint32

	key        *ecdsa.PrivateKey
	id         []byte
	userHandle []byte
	rpID       string
}

var b64 = base64.RawURLEncoding

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

// CredentialID is the credential's id (after Register).
func (a *Authenticator) CredentialID() []byte { return a.id }

// Register answers PublicKeyCredentialCreationOptions (JSON) with an
// attestation response.
func (a *Authenticator) Register(options []byte) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	a.key, a.rpID = key, o.RP.ID
	a.id = make([]byte, 16)
	rand.Read(a.id)
	if a.userHandle, err = b64.DecodeString(o.User.ID); err != nil {
		return nil, fmt.Errorf("user id: %w", err)
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes() // 0x04 || X || Y
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	if err != nil {
		return nil, err
	}
	auth := a.authData(flagAT)
	auth = append(auth, make([]byte, 16)...) // AAGUID
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(a.id)))
	auth = append(auth, a.id...)
	auth = append(auth, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return nil, err
	}
	cd := a.clientData("webauthn.create", o.Challenge)
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Assert answers PublicKeyCredentialRequestOptions (JSON) with an
// assertion, after incrementing the counter.
func (a *Authenticator) Assert(options []byte) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	return a.AssertChallenge(o.Challenge)
}

// AssertChallenge signs an assertion of challenge (base64url), as Assert.
func (a *Authenticator) AssertChallenge(challenge string) ([]byte, error) {
	if a.key == nil {
		return nil, fmt.Errorf("no credential: Register first")
	}
	a.Counter++
	auth := a.authData(0)
	cd := a.clientData("webauthn.get", challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, auth...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(auth),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(a.userHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

func (a *Authenticator) authData(extra byte) []byte {
	rp := sha256.Sum256([]byte(a.rpID))
	flags := byte(flagUP) | extra
	if a.UV {
		flags |= flagUV
	}
	out := append(rp[:], flags)
	return binary.BigEndian.AppendUint32(out, a.Counter)
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}
