// Package password hashes and checks passwords with argon2id (RFC 9106) and
// stores them as PHC strings, with the OWASP minimum parameters
// (m=19 MiB, t=2, p=1). Hashing is memory-hard on purpose, so Limiter caps how
// many hashes run at once: a login flood queues instead of exhausting memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Length limits, in bytes. The maximum is checked before any hashing so a
// huge password costs nothing.
const (
	MinLength = 8
	MaxLength = 1024
)

// Params are argon2id parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// Default is the OWASP recommendation.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Errors.
var (
	ErrMismatch  = errors.New("password: mismatch")
	ErrMalformed = errors.New("password: malformed hash")
	ErrBusy      = errors.New("password: too many hashes in progress")
)

// Hash returns the PHC string of pw under p.
func Hash(pw string, p Params) string {
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify checks pw against a PHC string in constant time.
func Verify(pw, phc string) error {
	p, salt, key, err := Parse(phc)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return ErrMismatch
	}
	return nil
}

// Parse decodes an argon2id PHC string. It bounds every parameter so a
// corrupted or hostile hash cannot make Verify allocate without limit.
func Parse(phc string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformed
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformed
	}
	var m, t, th uint64
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, ErrMalformed
	}
	for i, f := range fields {
		name, val, ok := strings.Cut(f, "=")
		want := [...]string{"m", "t", "p"}[i]
		if !ok || name != want {
			return p, nil, nil, ErrMalformed
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return p, nil, nil, ErrMalformed
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			th = n
		}
	}
	if m < 8 || m > 1<<20 || t < 1 || t > 16 || th < 1 || th > 16 {
		return p, nil, nil, ErrMalformed
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err = b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, ErrMalformed
	}
	key, err = b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformed
	}
	p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(th), SaltLen: len(salt), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

// Limiter bounds concurrent hashing and the queue in front of it.
type Limiter struct {
	slots chan struct{}
	queue chan struct{}
}

// NewLimiter allows running hashes at once and queued more waiting.
func NewLimiter(running, queued int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(1, running)), queue: make(chan struct{}, max(0, queued)+max(1, running))}
}

// Running is how many hashes are running now.
func (l *Limiter) Running() int { return len(l.slots) }

// Waiting is how many callers are queued for a slot now.
func (l *Limiter) Waiting() int { return max(0, len(l.queue)-len(l.slots)) }

// QueueCapacity is how many callers may wait before Do fails with ErrBusy.
func (l *Limiter) QueueCapacity() int { return cap(l.queue) - cap(l.slots) }

// Do runs f holding a slot. It fails with ErrBusy at once when the queue is
// full, and with the context's error if it ends while waiting.
func (l *Limiter) Do(ctx context.Context, f func()) error {
	select {
	case l.queue <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-l.queue }()
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.slots }()
	f()
	return nil
}
