package sqlstore

// Column lists, row scanning and the time encoding (Unix nanoseconds, 0 for
// the zero time), shared by every query here and by the backends' own.

import (
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Row is a single result row (database/sql and pgx both fit).
type Row interface{ Scan(dest ...any) error }

// Column lists, in the order the Scan functions expect.
const (
	UserCols    = `id, username, username_norm, password_hash, role, permissions, disabled, mfa, created_at`
	SessionCols = `id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
	idle_expires_at, expires_at, access_exp, auth_time, amr, acr, dpop_jkt, ip, user_agent, COALESCE(revoked_at, 0), revoke_reason`
	// SessionUserCols is a session (alias s) and its user (alias u).
	SessionUserCols = `s.id, s.user_id, s.nonce, s.generation, s.rotated_at, s.created_at, s.last_used_at,
	s.idle_expires_at, s.expires_at, s.access_exp, s.auth_time, s.amr, s.acr, s.dpop_jkt, s.ip, s.user_agent, COALESCE(s.revoked_at, 0), s.revoke_reason,
	u.id, u.username, u.username_norm, u.password_hash, u.role, u.permissions, u.disabled, u.mfa, u.created_at`
)

// NS encodes a time as Unix nanoseconds (0 for the zero time).
func NS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time decodes NS.
func Time(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

type userScan struct {
	u           store.User
	created     int64
	permissions string
}

func (d *userScan) dest() []any {
	return []any{&d.u.ID, &d.u.Username, &d.u.UsernameKey, &d.u.PasswordHash, &d.u.Role, &d.permissions,
		&d.u.Disabled, &d.u.MFA, &d.created}
}

func (d *userScan) user() store.User {
	d.u.CreatedAt = Time(d.created)
	d.u.Permissions = SplitPermissions(d.permissions)
	return d.u
}

// Permissions are stored space-separated: they cannot contain spaces.

// JoinPermissions encodes a permission list for its column.
func JoinPermissions(p []string) string { return strings.Join(p, " ") }

// SplitPermissions decodes JoinPermissions; never nil.
func SplitPermissions(s string) []string {
	out := strings.Fields(s)
	if out == nil {
		out = []string{}
	}
	return out
}

type sessionScan struct {
	x                                                            store.Session
	rotated, created, last, idle, exp, access, authTime, revoked int64
	amr                                                          string
}

func (d *sessionScan) dest() []any {
	return []any{&d.x.ID, &d.x.UserID, &d.x.Nonce, &d.x.Generation, &d.rotated, &d.created, &d.last,
		&d.idle, &d.exp, &d.access, &d.authTime, &d.amr, &d.x.ACR, &d.x.DPoPJKT, &d.x.IP, &d.x.UserAgent, &d.revoked, &d.x.RevokeReason}
}

func (d *sessionScan) session() store.Session {
	d.x.RotatedAt, d.x.CreatedAt, d.x.LastUsedAt = Time(d.rotated), Time(d.created), Time(d.last)
	d.x.IdleExpiresAt, d.x.ExpiresAt, d.x.AccessExpiresAt = Time(d.idle), Time(d.exp), Time(d.access)
	d.x.AuthTime, d.x.RevokedAt = Time(d.authTime), Time(d.revoked)
	d.x.AMR = splitAMR(d.amr)
	return d.x
}

// commonAMR are the method lists sessions carry, shared (read-only) so
// the refresh path does not split and allocate one per row.
var commonAMR = map[string][]string{}

func init() {
	for _, v := range []string{"pwd", "pwd otp mfa", "pwd hwk mfa", "pwd hwk user mfa", "hwk user mfa", "otp", "hwk", "hwk user"} {
		commonAMR[v] = strings.Fields(v)
	}
}

// splitAMR decodes the amr column. The slice may be shared: callers never
// modify a session's AMR (they build new lists).
func splitAMR(s string) []string {
	if v, ok := commonAMR[s]; ok {
		return v
	}
	return strings.Fields(s)
}

// ScanUser reads UserCols.
func ScanUser(r Row) (store.User, error) {
	var d userScan
	err := r.Scan(d.dest()...)
	return d.user(), err
}

// ScanSession reads SessionCols.
func ScanSession(r Row) (store.Session, error) {
	var d sessionScan
	err := r.Scan(d.dest()...)
	return d.session(), err
}

// ScanSessionUser reads SessionUserCols.
func ScanSessionUser(r Row) (store.Session, store.User, error) {
	var s sessionScan
	var u userScan
	err := r.Scan(append(s.dest(), u.dest()...)...)
	return s.session(), u.user(), err
}

// Collect scans every row with scan. The caller closes rows.
func Collect[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// More column lists, for the Scan functions below.
const (
	RevokedSessionCols = `id, access_exp`
	RevocationCols     = `seq, kind, subject, not_before, until`
	SigningKeyCols     = `id, algorithm, public_key, sealed_private, created_at, COALESCE(retired_at, 0)`
	ResourceKeyCols    = `id, name, hash, created_at, kind, audience, role, permissions`
	EventCols          = `seq, id, type, at, user_id, session_id, ip, user_agent, detail`
)

// ScanRevokedSession reads RevokedSessionCols.
func ScanRevokedSession(r Row) (store.RevokedSession, error) {
	var x store.RevokedSession
	var until int64
	err := r.Scan(&x.SessionID, &until)
	x.Until = Time(until)
	return x, err
}

// ScanRevocation reads RevocationCols.
func ScanRevocation(r Row) (store.Revocation, error) {
	var x store.Revocation
	var nb, until int64
	err := r.Scan(&x.Seq, &x.Kind, &x.Subject, &nb, &until)
	x.NotBefore, x.Until = Time(nb), Time(until)
	return x, err
}

// ScanSigningKey reads SigningKeyCols.
func ScanSigningKey(r Row) (store.SigningKey, error) {
	var k store.SigningKey
	var created, retired int64
	err := r.Scan(&k.ID, &k.Algorithm, &k.PublicKey, &k.SealedPrivate, &created, &retired)
	k.CreatedAt, k.RetiredAt = Time(created), Time(retired)
	return k, err
}

// ScanResourceKey reads ResourceKeyCols.
func ScanResourceKey(r Row) (store.ResourceKey, error) {
	var k store.ResourceKey
	var created int64
	var perms string
	err := r.Scan(&k.ID, &k.Name, &k.Hash, &created, &k.Kind, &k.Audience, &k.Role, &perms)
	k.CreatedAt, k.Permissions = Time(created), SplitPermissions(perms)
	return k, err
}

// ScanEvent reads EventCols.
func ScanEvent(r Row) (store.Event, error) {
	var e store.Event
	var at int64
	err := r.Scan(&e.Seq, &e.ID, &e.Type, &at, &e.UserID, &e.SessionID, &e.IP, &e.UserAgent, &e.Detail)
	e.At = Time(at)
	return e, err
}

// Column lists of second factors and tickets.
const (
	FactorCols = `id, user_id, type, label, secret, credential, counter, active, created_at, last_used_at`
	TicketCols = `id, kind, user_id, session_id, data, failures, expires_at`
)

// ScanFactor reads FactorCols.
func ScanFactor(r Row) (store.Factor, error) {
	var f store.Factor
	var created, used int64
	err := r.Scan(&f.ID, &f.UserID, &f.Type, &f.Label, &f.Secret, &f.CredentialID, &f.Counter, &f.Active, &created, &used)
	f.CreatedAt, f.LastUsedAt = Time(created), Time(used)
	return f, err
}

// ScanTicket reads TicketCols.
func ScanTicket(r Row) (store.Ticket, error) {
	var t store.Ticket
	var exp int64
	err := r.Scan(&t.ID, &t.Kind, &t.UserID, &t.SessionID, &t.Data, &t.Failures, &exp)
	t.ExpiresAt = Time(exp)
	return t, err
}
