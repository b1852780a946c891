package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// RefreshPrefix starts every refresh token, so secret scanners can recognise
// a leaked one.
const RefreshPrefix = "ghr_"

const (
	sessionIDLen = 16
	macLen       = 32
	refreshRaw   = sessionIDLen + 8 + macLen
	// refreshLen is the exact length of an encoded refresh token.
	refreshLen = len(RefreshPrefix) + (refreshRaw*8+5)/6
)

// ErrMalformed means a refresh token is not even shaped like one.
var ErrMalformed = errors.New("token: malformed refresh token")

// Refresh is a decoded (not yet verified) refresh token.
type Refresh struct {
	SessionID  string // base64url of 16 bytes
	Generation int64
	mac        [macLen]byte
}

// RefreshCodec makes and checks refresh tokens:
//
//	ghr_ base64url( session id (16) | generation (8, big endian) | MAC (32) )
//
// where MAC = HMAC-SHA256(key, session id | generation | session nonce). The
// key is derived from the master secret and the nonce is 32 random bytes kept
// in the session row: the database alone cannot produce a token, a session id
// alone cannot either, and any generation's token can be recomputed, which is
// what lets racing refreshes inside the grace window converge on one chain.
// The MAC is 256 bits that nobody without the key can predict.
type RefreshCodec struct {
	key []byte
}

// NewRefreshCodec uses key (32 bytes from secret.Master.Derive).
func NewRefreshCodec(key []byte) *RefreshCodec {
	return &RefreshCodec{key: append([]byte(nil), key...)}
}

// NewSessionID returns the API form of a raw 16-byte session id.
func NewSessionID(raw [sessionIDLen]byte) string {
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (c *RefreshCodec) mac(sid []byte, gen int64, nonce []byte) [macLen]byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(sid)
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], uint64(gen))
	m.Write(g[:])
	m.Write(nonce)
	var out [macLen]byte
	m.Sum(out[:0])
	return out
}

// Make returns the refresh token of generation gen of a session.
func (c *RefreshCodec) Make(sessionID string, gen int64, nonce []byte) (string, error) {
	sid, err := base64.RawURLEncoding.Strict().DecodeString(sessionID)
	if err != nil || len(sid) != sessionIDLen {
		return "", errors.New("token: bad session id")
	}
	raw := make([]byte, 0, refreshRaw)
	raw = append(raw, sid...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(gen))
	m := c.mac(sid, gen, nonce)
	raw = append(raw, m[:]...)
	return RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// ParseRefresh decodes a refresh token without verifying it. Only its shape is
// checked; Verify must follow before anything is done with the session.
func ParseRefresh(tok string) (Refresh, error) {
	var r Refresh
	if len(tok) != refreshLen || !strings.HasPrefix(tok, RefreshPrefix) {
		return r, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok[len(RefreshPrefix):])
	if err != nil || len(raw) != refreshRaw {
		return r, ErrMalformed
	}
	r.SessionID = base64.RawURLEncoding.EncodeToString(raw[:sessionIDLen])
	gen := binary.BigEndian.Uint64(raw[sessionIDLen : sessionIDLen+8])
	if gen == 0 || gen > 1<<62 {
		return r, ErrMalformed
	}
	r.Generation = int64(gen)
	copy(r.mac[:], raw[sessionIDLen+8:])
	return r, nil
}

// Verify reports whether r was made by this codec for a session with nonce.
// The comparison is constant-time.
func (c *RefreshCodec) Verify(r Refresh, nonce []byte) bool {
	sid, err := base64.RawURLEncoding.Strict().DecodeString(r.SessionID)
	if err != nil {
		return false
	}
	want := c.mac(sid, r.Generation, nonce)
	return hmac.Equal(want[:], r.mac[:])
}
