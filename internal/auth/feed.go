package auth

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// revocationLog is what following, feeding and pruning the revocation log
// needs.
type revocationLog interface {
	RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Revocation, error)
	LogCutoff(ctx context.Context, kind, subject string, c store.Cutoff) error
	PruneRevocations(ctx context.Context, t time.Time) (int, error)
}

// This file serves resource servers and live connections: the revocation
// feed, resource-server keys, RFC 7662 introspection, RFC 7009 revocation,
// and in-process notifications for WebSockets.

// broadcast wakes every waiter at once: waiters take C(), and Notify closes
// it and installs a fresh channel.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) Notify() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// RevocationsChanged is closed the next time the revocation state changes
// (here or, through the log, in another process). Take it before checking
// the state, then wait on it.
func (s *Service) RevocationsChanged() <-chan struct{} { return s.changes.C() }

// afterRevocation runs after every revocation written to the store: it
// applies the new log entries (idempotent with the direct in-memory update)
// and so wakes the feed's long polls and the WebSockets.
func (s *Service) afterRevocation(ctx context.Context) {
	if err := s.SyncRevocations(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("revocation sync failed", "err", err)
	}
}

// FeedSession is a revoked session in the feed.
type FeedSession struct {
	SessionID string
	// Until: after it no access token of the session can be unexpired.
	Until time.Time
}

// FeedUser is a per-user cutoff in the feed.
type FeedUser struct {
	UserID    string
	NotBefore time.Time
}

// FeedPage is one answer of the revocation feed.
type FeedPage struct {
	Cursor          int64
	GlobalNotBefore time.Time // zero: none in this page
	Sessions        []FeedSession
	Users           []FeedUser
}

// Feed returns the revocations after cursor, waiting up to wait for one if
// there is none yet. A negative cursor asks for a snapshot of everything
// still in force, with the cursor to follow from.
func (s *Service) Feed(ctx context.Context, cursor int64, wait time.Duration) (FeedPage, error) {
	if cursor < 0 {
		return s.snapshot(ctx)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := s.changes.C() // before the read: no wakeup can be missed
		list, err := s.revlog.RevocationsSince(ctx, cursor, 1000)
		if err != nil {
			return FeedPage{}, err
		}
		if len(list) > 0 || wait <= 0 {
			return s.page(cursor, list), nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return FeedPage{Cursor: cursor}, nil
		case <-ctx.Done():
			return FeedPage{}, ctx.Err()
		}
	}
}

func (s *Service) snapshot(ctx context.Context) (FeedPage, error) {
	var all []store.Revocation
	var cursor int64
	for {
		list, err := s.revlog.RevocationsSince(ctx, cursor, 1000)
		if err != nil {
			return FeedPage{}, err
		}
		all = append(all, list...)
		if len(list) < 1000 {
			break
		}
		cursor = list[len(list)-1].Seq
	}
	return s.page(0, all), nil
}

// page turns log entries into a feed page, leaving out entries already
// moot (Until passed) but advancing the cursor past them.
func (s *Service) page(cursor int64, list []store.Revocation) FeedPage {
	p := FeedPage{Cursor: cursor, Sessions: []FeedSession{}, Users: []FeedUser{}}
	userAt := map[string]int{} // one entry per user: the latest cutoff
	now := s.now()
	for _, r := range list {
		p.Cursor = r.Seq
		if !r.Until.After(now) {
			continue
		}
		switch r.Kind {
		case store.KindSession:
			p.Sessions = append(p.Sessions, FeedSession{SessionID: r.Subject, Until: r.Until})
		case store.KindUser:
			if i, ok := userAt[r.Subject]; ok {
				if r.NotBefore.After(p.Users[i].NotBefore) {
					p.Users[i].NotBefore = r.NotBefore
				}
				continue
			}
			userAt[r.Subject] = len(p.Users)
			p.Users = append(p.Users, FeedUser{UserID: r.Subject, NotBefore: r.NotBefore})
		case store.KindGlobal:
			if r.NotBefore.After(p.GlobalNotBefore) {
				p.GlobalNotBefore = r.NotBefore
			}
		}
	}
	return p
}
