package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"
)

// Window is how far a proof's iat may be from the verifier's clock, either
// way: a browser's clock is often a little off.
const Window = 60 * time.Second

// Request is what a proof must match.
type Request struct {
	Method string
	// URL is the request's public URL (scheme, host, path), as the client
	// addressed it: behind a proxy, not the URL the server received.
	URL string
	// AccessToken is the token presented with the proof, if any: the
	// proof's ath must be its hash.
	AccessToken string
}

// Verifier checks proofs against requests. Its replay cache is this
// process's; nonces, when on, are accepted by every process with the key.
type Verifier struct {
	keys   keyCache // proof headers already checked
	replay *ReplayCache
	nonces *Nonces // nil: no nonce demanded
	now    func() time.Time
}

// NewVerifier returns a verifier with its own replay cache of at most
// maxEntries jtis (0: DefaultMaxEntries). nonces may be nil.
func NewVerifier(maxEntries int, nonces *Nonces, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{replay: NewReplayCache(maxEntries), nonces: nonces, now: now}
}

// Remembered is the number of proofs in the replay cache.
func (v *Verifier) Remembered() int { return v.replay.Len() }

// Nonces returns the nonce source, nil when nonces are off.
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Nonce is the nonce to offer a client now ("" when nonces are off).
func (v *Verifier) Nonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Current(v.now())
}

// Verify parses proof and checks it is for req, fresh, carries the nonce
// when one is demanded, and was not seen before. The jti is recorded only
// when everything else checks out: a refused proof uses up nothing.
func (v *Verifier) Verify(proof string, req Request) (Proof, error) {
	p, err := parse(proof, &v.keys)
	if err != nil {
		return Proof{}, err
	}
	now := v.now()
	switch {
	case p.Method != req.Method:
		return Proof{}, invalid("htm is not this request's method")
	case !SameURL(p.URL, req.URL):
		return Proof{}, invalid("htu is not this request's URL")
	case p.IssuedAt.Before(now.Add(-Window)) || p.IssuedAt.After(now.Add(Window)):
		return Proof{}, invalid("iat is not within 60 seconds of the server's clock")
	}
	if req.AccessToken != "" {
		want := TokenHash(req.AccessToken)
		if subtle.ConstantTimeCompare([]byte(p.AccessTokenHash), []byte(want)) != 1 {
			return Proof{}, invalid("ath is not the presented access token's hash")
		}
	}
	if v.nonces != nil && !v.nonces.Valid(p.Nonce, now) {
		return Proof{}, ErrUseNonce
	}
	if err := v.replay.Use(p.Thumbprint, p.ID, now); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// DefaultMaxEntries bounds a replay cache: about 75 MiB at most (36 bytes
// an entry, BenchmarkReplayCacheFlood), and only under a flood of valid,
// distinct proofs.
const DefaultMaxEntries = 1 << 21

// ReplayCache remembers the proofs (key thumbprint and jti) used within
// the iat window. A proof is acceptable for at most 2×Window after it is
// first seen (iat up to Window ahead, then up to Window old), so entries
// are kept in two generations of 2×Window each: an entry lives between
// 2×Window and 4×Window, and memory is bounded by what arrives in 4×Window
// and by max. A full cache refuses new proofs (ErrBusy) rather than forget
// one that could be replayed.
type ReplayCache struct {
	mu        sync.Mutex
	max       int
	cur, prev map[[16]byte]struct{}
	rotated   time.Time
}

// NewReplayCache returns a cache of at most max entries (0: the default).
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &ReplayCache{max: max, cur: map[[16]byte]struct{}{}, prev: map[[16]byte]struct{}{}}
}

// Use records the proof (thumbprint, jti), or returns ErrReplay if it was
// recorded before. It allocates nothing unless the map grows.
func (c *ReplayCache) Use(thumbprint, jti string, now time.Time) error {
	// The key's thumbprint is part of the entry: one client's jti cannot
	// block another's. Parse bounds both, so the buffer stays on the stack.
	var buf [512]byte
	in := append(append(append(buf[:0], thumbprint...), 0), jti...)
	sum := sha256.Sum256(in)
	var k [16]byte
	copy(k[:], sum[:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rotated.IsZero() {
		c.rotated = now
	}
	if idle := now.Sub(c.rotated); idle >= 2*Window {
		c.prev, c.cur = c.cur, make(map[[16]byte]struct{}, len(c.cur))
		if idle >= 4*Window { // quiet for long: both generations are old
			clear(c.prev)
		}
		c.rotated = now
	}
	if _, ok := c.cur[k]; ok {
		return ErrReplay
	}
	if _, ok := c.prev[k]; ok {
		return ErrReplay
	}
	if len(c.cur)+len(c.prev) >= c.max {
		return ErrBusy
	}
	c.cur[k] = struct{}{}
	return nil
}

// Len is the number of proofs remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// Nonces are server-issued DPoP nonces (RFC 9449 §8) that need no shared
// state: a nonce is a time step and its MAC under a key every instance
// derives from the master secret, so any instance accepts any instance's
// nonce. A nonce is valid in its step and the NonceSteps-1 after it: it
// expires within NonceStep×NonceSteps, and the offered one changes every
// NonceStep.
type Nonces struct {
	key []byte
}

// Nonce timing: a new nonce every minute, each accepted for 5 minutes at
// most (4 to 5 minutes after it was first offered).
const (
	NonceStep  = time.Minute
	NonceSteps = 5
)

// NewNonces returns a nonce source keyed by key (32 bytes or more).
func NewNonces(key []byte) *Nonces { return &Nonces{key: key} }

// Current is the nonce of now's step.
func (n *Nonces) Current(now time.Time) string {
	return n.make(uint64(now.Unix() / int64(NonceStep/time.Second)))
}

func (n *Nonces) make(step uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], step)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("gatehouse dpop nonce"))
	m.Write(b[:8])
	var sum [sha256.Size]byte
	copy(b[8:], m.Sum(sum[:0]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Valid reports whether s is a nonce of one of the last NonceSteps steps.
func (n *Nonces) Valid(s string, now time.Time) bool {
	var b [8 + 16]byte
	if base64.RawURLEncoding.EncodedLen(len(b)) != len(s) {
		return false
	}
	if k, err := b64.Decode(b[:], []byte(s)); err != nil || k != len(b) {
		return false
	}
	step := binary.BigEndian.Uint64(b[:8])
	cur := uint64(now.Unix() / int64(NonceStep/time.Second))
	if step > cur || cur-step >= NonceSteps {
		return false
	}
	return hmac.Equal([]byte(n.make(step)), []byte(s))
}
