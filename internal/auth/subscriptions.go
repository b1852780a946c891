package auth

import (
	"sync"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// In-process subscriptions to a user's security events (the WebSocket).

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

// Subscribers reports how many live listeners the user has (for tests).
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
