package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"
)

// strict is the encoding of refresh tokens and session ids: canonical
// base64url only, so one token has one spelling. Made once (Strict
// returns a fresh copy on every call).
var strict = base64.RawURLEncoding.Strict()

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
	// macs holds keyed HMACs to Reset and reuse (*macState): keying one
	// costs more allocations than the rest of a refresh token's work.
	macs sync.Pool
}

// macState is a keyed HMAC with its input and output buffers: passed to
// the hash's methods they escape, so they live with it, not per call.
type macState struct {
	h   hash.Hash
	msg [sessionIDLen + 8 + 32]byte
	out [macLen]byte
}

// NewRefreshCodec uses key (32 bytes from secret.Master.Derive).
func NewRefreshCodec(key []byte) *RefreshCodec {
	c := &RefreshCodec{key: append([]byte(nil), key...)}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, c.key)} }
	return c
}

// decodeSessionID decodes a session id's 16 bytes; false if it is not
// exactly the canonical spelling of 16 bytes.
func decodeSessionID(sessionID string) (sid [sessionIDLen]byte, ok bool) {
	var buf [sessionIDLen + 3]byte // room for a too-long id to be caught
	if len(sessionID) != (sessionIDLen*8+5)/6 {
		return sid, false
	}
	n, err := strict.Decode(buf[:], []byte(sessionID))
	if err != nil || n != sessionIDLen {
		return sid, false
	}
	copy(sid[:], buf[:n])
	return sid, true
}

// NewSessionID returns the API form of a raw 16-byte session id.
func NewSessionID(raw [sessionIDLen]byte) string {
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (c *RefreshCodec) mac(sid []byte, gen int64, nonce []byte) [macLen]byte {
	m := c.macs.Get().(*macState)
	m.h.Reset()
	b := append(m.msg[:0], sid...)
	b = binary.BigEndian.AppendUint64(b, uint64(gen))
	m.h.Write(append(b, nonce...))
	m.h.Sum(m.out[:0])
	out := m.out
	c.macs.Put(m)
	return out
}

// Make returns the refresh token of generation gen of a session.
func (c *RefreshCodec) Make(sessionID string, gen int64, nonce []byte) (string, error) {
	sid, ok := decodeSessionID(sessionID)
	if !ok {
		return "", errors.New("token: bad session id")
	}
	var raw [refreshRaw]byte
	copy(raw[:], sid[:])
	binary.BigEndian.PutUint64(raw[sessionIDLen:], uint64(gen))
	m := c.mac(sid[:], gen, nonce)
	copy(raw[sessionIDLen+8:], m[:])
	var out [refreshLen]byte
	copy(out[:], RefreshPrefix)
	base64.RawURLEncoding.Encode(out[len(RefreshPrefix):], raw[:])
	return string(out[:]), nil
}

// ParseRefresh decodes a refresh token without verifying it. Only its shape is
// checked; Verify must follow before anything is done with the session.
func ParseRefresh(tok string) (Refresh, error) {
	var r Refresh
	if len(tok) != refreshLen || !strings.HasPrefix(tok, RefreshPrefix) {
		return r, ErrMalformed
	}
	var buf [refreshRaw + 3]byte
	n, err := strict.Decode(buf[:], []byte(tok[len(RefreshPrefix):]))
	if err != nil || n != refreshRaw {
		return r, ErrMalformed
	}
	raw := buf[:n]
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
	sid, ok := decodeSessionID(r.SessionID)
	if !ok {
		return false
	}
	want := c.mac(sid[:], r.Generation, nonce)
	return hmac.Equal(want[:], r.mac[:])
}
