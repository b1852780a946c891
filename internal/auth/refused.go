package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Refused requests (rate_limited, csrf_failed) are recorded aggregated, not
// one durable row each: an attacker can send thousands a second, and the
// audit log must grow with time, not with the attacker's request rate (nor
// bury a victim's own feed under the attacker's rows). The first refusal
// of a kind, from an address (IPv6 per /64), against an account, in a
// window is recorded at once, so the victim sees that someone tried; the
// rest of that window is counted and recorded as one summary event when
// the window closes. Per kind and account at most maxRefusedAddrs
// addresses are told apart in a window; more are folded into one entry
// without an address, and the whole table is bounded by maxRefusedKeys.

const (
	// DefaultRefusedWindow is Config.RefusedEventWindow's default.
	DefaultRefusedWindow = time.Minute
	maxRefusedAddrs      = 4
	maxRefusedKeys       = 10_000
	foldedAddress        = "*"
)

func aggregated(typ string) bool {
	return typ == EventRateLimited || typ == EventCSRFFailed || typ == EventDPoPMismatch
}

type refusedKey struct{ typ, userID, addr string }

type refusedEntry struct {
	first store.Event // as recorded when the window opened
	start time.Time
	more  int // refusals after the first, not yet recorded
}

type refusedLog struct {
	mu      sync.Mutex
	window  time.Duration
	entries map[refusedKey]*refusedEntry
	addrs   map[refusedKey]int // (typ, user, "") -> distinct addresses open
}

func newRefusedLog(window time.Duration) *refusedLog {
	return &refusedLog{window: window, entries: map[refusedKey]*refusedEntry{}, addrs: map[refusedKey]int{}}
}

// note takes a refused request's event e. It returns the events to record
// now: e itself if it opens a window, plus the summary of an expired window
// it replaces; nothing if it only adds to an open window's count.
func (l *refusedLog) note(e store.Event) []store.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := refusedKey{e.Type, e.UserID, throttle.AddressKey(e.IP)}
	var out []store.Event
	if x := l.entries[k]; x != nil {
		if e.At.Sub(x.start) < l.window {
			x.more++
			return nil
		}
		out = append(out, l.close(k, x)...)
	}
	perUser := refusedKey{e.Type, e.UserID, ""}
	if l.addrs[perUser] >= maxRefusedAddrs || len(l.entries) >= maxRefusedKeys {
		// Too many addresses at once: one entry for the rest.
		k.addr = foldedAddress
		if len(l.entries) >= maxRefusedKeys {
			k.userID = ""
		}
		if x := l.entries[k]; x != nil && e.At.Sub(x.start) < l.window {
			x.more++
			return out
		} else if x != nil {
			out = append(out, l.close(k, x)...)
		}
		e.UserID, e.IP, e.UserAgent = k.userID, "", ""
		e.Detail += " (from several addresses)"
	}
	l.entries[k] = &refusedEntry{first: e, start: e.At}
	if k.addr != foldedAddress {
		l.addrs[perUser]++
	}
	return append(out, e)
}

// close removes k's entry and returns its summary, if it counted any.
func (l *refusedLog) close(k refusedKey, x *refusedEntry) []store.Event {
	delete(l.entries, k)
	if k.addr != foldedAddress {
		perUser := refusedKey{k.typ, k.userID, ""}
		if l.addrs[perUser]--; l.addrs[perUser] <= 0 {
			delete(l.addrs, perUser)
		}
	}
	if x.more == 0 {
		return nil
	}
	s := x.first
	s.ID, s.At = newID(), x.start.Add(l.window)
	s.Detail = fmt.Sprintf("%d more like this in the %v after the first (%s)", x.more, l.window, x.first.Detail)
	return []store.Event{s}
}

// expire closes the windows that ended by now (all, if now is zero) and
// returns their summaries.
func (l *refusedLog) expire(now time.Time) []store.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Event
	for k, x := range l.entries {
		if now.IsZero() || now.Sub(x.start) >= l.window {
			out = append(out, l.close(k, x)...)
		}
	}
	return out
}

// FlushRefusedEvents records the summaries of aggregated refusals whose
// window has ended (Run does it every minute, and all of them when it
// stops).
func (s *Service) FlushRefusedEvents(ctx context.Context) {
	s.recordAll(ctx, s.refused.expire(s.now()))
}

func (s *Service) recordAll(ctx context.Context, list []store.Event) {
	for _, e := range list {
		s.record(ctx, e)
	}
}
