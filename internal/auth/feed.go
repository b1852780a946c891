package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

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
		list, err := s.store.RevocationsSince(ctx, cursor, 1000)
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
		list, err := s.store.RevocationsSince(ctx, cursor, 1000)
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

// ResourceKeyPrefix starts every resource-server key.
const ResourceKeyPrefix = "ghk_"

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// AddResourceKey creates a resource-server key. The key itself is returned
// once and never stored.
func (s *Service) AddResourceKey(ctx context.Context, name string) (string, store.ResourceKey, error) {
	key := ResourceKeyPrefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	rk := store.ResourceKey{ID: newID(), Name: name, Hash: hashKey(key), CreatedAt: s.now()}
	if err := s.store.AddResourceKey(ctx, rk); err != nil {
		return "", rk, err
	}
	return key, rk, nil
}

// ListResourceKeys lists the stored resource-server keys (hashes only).
func (s *Service) ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error) {
	return s.store.ListResourceKeys(ctx)
}

// RemoveResourceKey deletes one.
func (s *Service) RemoveResourceKey(ctx context.Context, id string) error {
	return s.notFound(s.store.RemoveResourceKey(ctx, id))
}

// CheckResourceKey reports whether key is a configured (Config.ResourceKeys)
// or stored resource-server key.
func (s *Service) CheckResourceKey(ctx context.Context, key string) (bool, error) {
	if key == "" || len(key) > 256 {
		return false, nil
	}
	h := hashKey(key)
	ok := false
	for _, k := range s.staticKeys {
		ok = ok || subtle.ConstantTimeCompare(h, k) == 1
	}
	if ok {
		return true, nil
	}
	if !strings.HasPrefix(key, ResourceKeyPrefix) {
		return false, nil
	}
	_, err := s.store.FindResourceKey(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Introspection is an RFC 7662 answer. Inactive tokens carry nothing else.
type Introspection struct {
	Active    bool
	TokenType string // "access_token" or "refresh_token"
	Subject   string
	SessionID string
	Role      string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Introspect reports whether a token is active now. It never changes state:
// introspecting an old refresh token is not reuse.
func (s *Service) Introspect(ctx context.Context, tok string) (Introspection, error) {
	if strings.HasPrefix(tok, token.RefreshPrefix) {
		r, err := token.ParseRefresh(tok)
		if err != nil {
			return Introspection{}, nil
		}
		sess, u, err := s.store.GetSessionWithUser(ctx, r.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			return Introspection{}, nil
		}
		if err != nil {
			return Introspection{}, err
		}
		now := s.now()
		current := r.Generation == sess.Generation ||
			(r.Generation == sess.Generation-1 && s.cfg.ReuseGrace > 0 && now.Sub(sess.RotatedAt) <= s.cfg.ReuseGrace)
		if !s.refresh.Verify(r, sess.Nonce) || !current || sess.Revoked() || u.Disabled ||
			!now.Before(sess.ExpiresAt) || !now.Before(sess.IdleExpiresAt) {
			return Introspection{}, nil
		}
		return Introspection{Active: true, TokenType: "refresh_token", Subject: u.ID, SessionID: sess.ID,
			Role: u.Role, IssuedAt: sess.RotatedAt, ExpiresAt: minTime(sess.IdleExpiresAt, sess.ExpiresAt)}, nil
	}
	p, err := s.Authenticate(tok)
	if err != nil {
		return Introspection{}, nil
	}
	return Introspection{Active: true, TokenType: "access_token", Subject: p.UserID, SessionID: p.SessionID,
		Role: p.Role, IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt}, nil
}

// RevokeToken is RFC 7009: a refresh or access token revokes its whole
// session (revocation is keyed by session, never by token string); anything
// unrecognised is silently ignored.
func (s *Service) RevokeToken(ctx context.Context, tok string, m Meta) error {
	if strings.HasPrefix(tok, token.RefreshPrefix) {
		return s.Logout(ctx, tok, "", m)
	}
	return s.Logout(ctx, "", tok, m)
}

// subscriber is one live listener of a user's events.
type subscriber struct {
	ch   chan store.Event
	lost chan struct{} // closed when an event had to be dropped
	once sync.Once
}

// Subscribe delivers the user's security events as they are recorded in
// this process, until cancel is called. A slow reader does not slow the
// server down: when its buffer is full the event is dropped and lost is
// closed, so the reader can tell its client to resync.
func (s *Service) Subscribe(userID string) (events <-chan store.Event, lost <-chan struct{}, cancel func()) {
	sub := &subscriber{ch: make(chan store.Event, 32), lost: make(chan struct{})}
	s.subsMu.Lock()
	if s.subs == nil {
		s.subs = map[string]map[*subscriber]struct{}{}
	}
	if s.subs[userID] == nil {
		s.subs[userID] = map[*subscriber]struct{}{}
	}
	s.subs[userID][sub] = struct{}{}
	s.subsMu.Unlock()
	return sub.ch, sub.lost, func() {
		s.subsMu.Lock()
		delete(s.subs[userID], sub)
		if len(s.subs[userID]) == 0 {
			delete(s.subs, userID)
		}
		s.subsMu.Unlock()
	}
}

// Subscribers reports how many live listeners the user has (metrics, tests).
func (s *Service) Subscribers(userID string) int {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	return len(s.subs[userID])
}

func (s *Service) publish(e store.Event) {
	if e.UserID == "" {
		return
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for sub := range s.subs[e.UserID] {
		select {
		case sub.ch <- e:
		default:
			sub.once.Do(func() { close(sub.lost) })
		}
	}
}
