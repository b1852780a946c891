package auth

import (
	"context"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// TestDomainOnPostgres runs the domain's scenarios on PostgreSQL, where
// refresh takes the one-round-trip fast path.
func TestDomainOnPostgres(t *testing.T) {
	postgres.TestSchema(t) // skips (or fails in CI) without PostgreSQL
	saved := openStore
	openStore = func(t *testing.T) (store.Store, error) {
		return postgres.Open(context.Background(), postgres.TestSchema(t), postgres.Options{})
	}
	defer func() { openStore = saved }()
	for name, fn := range map[string]func(*testing.T){
		"RefreshRotationAndGrace":     TestRefreshRotationAndGrace,
		"ReuseRevokesSession":         TestReuseRevokesSession,
		"RefreshRejectsForgeries":     TestRefreshRejectsForgeries,
		"Timeouts":                    TestTimeouts,
		"ConcurrentRefreshNeverForks": TestConcurrentRefreshNeverForks,
		"LogoutAndSessions":           TestLogoutAndSessions,
		"RevocationsSurviveRestart":   TestRevocationsSurviveRestart,
		"DisableTakesEffectAtOnce":    TestDisableTakesEffectAtOnce,
		"RoleChangeCutoff":            TestRoleChangeCutoffWithinOneSecond,
		"RevokeAll":                   TestRevokeAll,
		"ChangePassword":              TestChangePassword,
		"SessionLimit":                TestSessionLimitEvictsLeastRecentlyUsed,
		"IPPolicy":                    TestIPPolicy,
	} {
		t.Run(name, fn)
	}
}
