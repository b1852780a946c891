package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Live subscriptions to a user's security events (the WebSocket). They are
// fed from the events outbox, not from this process's own calls: an event
// reaches the sockets of every instance, whichever instance (or CLI)
// recorded it, and only once it has committed. While anyone subscribes, one
// goroutine follows the outbox by sequence number (the store makes its
// sequence order its commit order, so nothing committed can fall behind
// the cursor): at once when this process records an event, and every
// SyncInterval for the others' events.

// subscriber is one live listener of a user's events.
type subscriber struct {
	ch   chan store.Event
	lost chan struct{} // closed when an event had to be dropped
	once sync.Once
}

// outboxPage is how many events one read of the outbox takes.
const outboxPage = 256

// Subscribe delivers the user's security events committed from now on, by
// any instance, until cancel is called. A slow reader does not slow the
// server down: when its buffer is full the event is dropped and lost is
// closed, so the reader can tell its client to resync. The first
// subscription of the process reads where the outbox ends, so it fails
// when the store does.
func (s *Service) Subscribe(ctx context.Context, userID string) (events <-chan store.Event, lost <-chan struct{}, cancel func(), err error) {
	sub := &subscriber{ch: make(chan store.Event, 32), lost: make(chan struct{})}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.feedStop == nil {
		// Nobody followed the outbox: start from its end. Holding the
		// lock meanwhile is fine: no feed is delivering, and other
		// subscribers wait for this one start.
		cursor, err := s.outboxEnd(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		s.startFeed(cursor)
	}
	if s.subs[userID] == nil {
		s.subs[userID] = map[*subscriber]struct{}{}
	}
	s.subs[userID][sub] = struct{}{}
	return sub.ch, sub.lost, func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		if _, ok := s.subs[userID][sub]; !ok {
			return // cancelled already
		}
		delete(s.subs[userID], sub)
		if len(s.subs[userID]) == 0 {
			delete(s.subs, userID)
		}
		if len(s.subs) == 0 {
			s.feedStop() // the last one: stop following
			s.feedStop = nil
		}
	}, nil
}

// Subscribers reports how many live listeners the user has (for tests).
func (s *Service) Subscribers(userID string) int {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	return len(s.subs[userID])
}

// outboxEnd is the sequence number of the newest event (0 if none).
func (s *Service) outboxEnd(ctx context.Context) (int64, error) {
	last, err := s.events.ListEvents(ctx, store.EventFilter{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("subscribe to events: %w", err)
	}
	if len(last) == 0 {
		return 0, nil
	}
	return last[0].Seq, nil
}

// startFeed starts following the outbox after cursor. The caller holds
// subsMu. A feed delivers only while it is the current one (gen), so one
// stopping as another starts never delivers an event twice.
func (s *Service) startFeed(cursor int64) {
	ctx, stop := context.WithCancel(context.Background())
	s.feedGen++
	s.feedStop = stop
	go s.followOutbox(ctx, s.feedGen, cursor)
}

func (s *Service) followOutbox(ctx context.Context, gen uint64, cursor int64) {
	tick := time.NewTicker(s.cfg.SyncInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.outboxKick:
		}
		for {
			list, err := s.events.EventsSince(ctx, cursor, outboxPage)
			if err != nil {
				if ctx.Err() == nil && !failing {
					s.log.Warn("following the events outbox failed; retrying", slog.Any("err", err))
				}
				failing = true
				break
			}
			failing = false
			if len(list) > 0 {
				cursor = list[len(list)-1].Seq
				s.deliver(gen, list)
			}
			if len(list) < outboxPage {
				break
			}
		}
	}
}

// deliver hands committed events to their users' live subscribers.
func (s *Service) deliver(gen uint64, events []store.Event) {
	for _, e := range events {
		if e.UserID != "" {
			s.snaps.forgetUser(e.UserID) // whatever it records may have changed it
		}
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if gen != s.feedGen {
		return // a stopped feed: its successor delivers
	}
	for _, e := range events {
		for sub := range s.subs[e.UserID] {
			select {
			case sub.ch <- e:
			default:
				sub.once.Do(func() { close(sub.lost) })
			}
		}
	}
}

// kickOutbox wakes the outbox feed at once: this process just committed
// events, and its own sockets should not wait for the next poll.
func (s *Service) kickOutbox() {
	select {
	case s.outboxKick <- struct{}{}:
	default:
	}
}
