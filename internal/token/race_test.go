//go:build race

package token

// raceEnabled: the race detector changes allocation counts (and sync.Pool
// drops items on purpose), so allocation tests do not hold under it.
const raceEnabled = true
