package httpapi

import "time"

// SetAuthDeadline shortens the in-band WebSocket authentication deadline
// for tests and returns the previous value.
func SetAuthDeadline(d time.Duration) time.Duration {
	old := authDeadline
	authDeadline = d
	return old
}
