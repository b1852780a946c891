package auth

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
)

// The domain suite: every scenario of the domain against a real store, run
// whole by every backend (Dex's conformance pattern, one level up). A
// scenario is a func testX(t *testing.T) in this package listed here;
// TestDomainSuiteIsComplete fails if one is left out, so no backend can
// silently skip one (PostgreSQL's own refresh path included).
var domainSuite = []struct {
	name string
	fn   func(*testing.T)
}{
	{"DisableTakesEffectAtOnce", testDisableTakesEffectAtOnce},
	{"RoleChangeCutoffWithinOneSecond", testRoleChangeCutoffWithinOneSecond},
	{"RevokeAll", testRevokeAll},
	{"CutoffsSurviveRestartAndReachOtherProcesses", testCutoffsSurviveRestartAndReachOtherProcesses},
	{"ChangePassword", testChangePassword},
	{"SessionLimitEvictsLeastRecentlyUsed", testSessionLimitEvictsLeastRecentlyUsed},
	{"IPPolicy", testIPPolicy},
	{"LoginThrottle", testLoginThrottle},
	{"EventsPaging", testEventsPaging},
	{"EventRetention", testEventRetention},
	{"KeyRotatedByAnotherInstance", testKeyRotatedByAnotherInstance},
	{"SigningAlgSwitch", testSigningAlgSwitch},
	{"RevocationsFreshFailsClosed", testRevocationsFreshFailsClosed},
	{"RegisterValidation", testRegisterValidation},
	{"LoginFailures", testLoginFailures},
	{"RefreshRotationAndGrace", testRefreshRotationAndGrace},
	{"ReuseRevokesSession", testReuseRevokesSession},
	{"RefreshRejectsForgeries", testRefreshRejectsForgeries},
	{"Timeouts", testTimeouts},
	{"ConcurrentRefreshNeverForks", testConcurrentRefreshNeverForks},
	{"LogoutAndSessions", testLogoutAndSessions},
	{"RevocationsSurviveRestart", testRevocationsSurviveRestart},
	{"RevocationsPruneAndCutoffs", testRevocationsPruneAndCutoffs},
	{"RevocationLookupAllocatesNothing", testRevocationLookupAllocatesNothing},
	{"LoginNovelty", testLoginNovelty},
}

func runDomain(t *testing.T, open func(t *testing.T) (store.Store, error)) {
	saved := openStore
	openStore = open
	defer func() { openStore = saved }()
	for _, tc := range domainSuite {
		t.Run(tc.name, tc.fn)
	}
}

func TestDomainOnSQLite(t *testing.T) {
	runDomain(t, func(t *testing.T) (store.Store, error) {
		return sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "gh.db"), sqlite.Options{})
	})
}

// TestDomainOnPostgres runs the suite on PostgreSQL, where refresh takes
// the one-round-trip fast path.
func TestDomainOnPostgres(t *testing.T) {
	postgres.TestSchema(t) // skips (or fails in CI) without PostgreSQL
	runDomain(t, func(t *testing.T) (store.Store, error) {
		return postgres.Open(context.Background(), postgres.TestSchema(t), postgres.Options{})
	})
}

// Every func testX(t *testing.T) of the package is in domainSuite.
func TestDomainSuiteIsComplete(t *testing.T) {
	listed := map[string]bool{}
	for _, tc := range domainSuite {
		name := runtime.FuncForPC(reflect.ValueOf(tc.fn).Pointer()).Name()
		listed[name[strings.LastIndex(name, ".")+1:]] = true
	}
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "test") || fd.Type.Params.NumFields() != 1 {
				continue
			}
			if !listed[fd.Name.Name] {
				t.Errorf("%s (%s) is not in domainSuite: no backend runs it", fd.Name.Name, f)
			}
		}
	}
}
