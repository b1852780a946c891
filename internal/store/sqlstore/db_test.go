package sqlstore

import "testing"

func TestFlavorRewrite(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		in     string
		want   string
	}{
		{"postgres placeholders", PostgreSQL,
			`UPDATE sessions SET access_exp = GREATEST(access_exp, ?) WHERE id = ? AND generation = ?`,
			`UPDATE sessions SET access_exp = GREATEST(access_exp, $1) WHERE id = $2 AND generation = $3`},
		{"postgres keeps FOR UPDATE", PostgreSQL,
			`SELECT id FROM users WHERE id = ? FOR UPDATE`, `SELECT id FROM users WHERE id = $1 FOR UPDATE`},
		{"postgres, ten and more", PostgreSQL,
			`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			`VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`},
		{"sqlite MAX", SQLite,
			`UPDATE sessions SET access_exp = GREATEST(access_exp, ?) WHERE id = ?`,
			`UPDATE sessions SET access_exp = MAX(access_exp, ?) WHERE id = ?`},
		{"sqlite has no FOR UPDATE", SQLite,
			`SELECT id FROM users WHERE id = ? FOR UPDATE`, `SELECT id FROM users WHERE id = ?`},
		{"no placeholders", PostgreSQL, `SELECT COUNT(*) FROM signing_keys`, `SELECT COUNT(*) FROM signing_keys`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.flavor.Rewrite(tt.in); got != tt.want {
				t.Errorf("rewrite:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// The translation cache hands back the flavor's text for every query.
func TestStoreTranslatesOnce(t *testing.T) {
	s := New(nil, PostgreSQL)
	q := `DELETE FROM events WHERE at < ?`
	if got := s.q(q); got != `DELETE FROM events WHERE at < $1` {
		t.Fatalf("first: %s", got)
	}
	if got := s.q(q); got != `DELETE FROM events WHERE at < $1` {
		t.Fatalf("cached: %s", got)
	}
	if n := testing.AllocsPerRun(100, func() { s.q(q) }); n != 0 {
		t.Fatalf("cached translation allocates %v times", n)
	}
}
