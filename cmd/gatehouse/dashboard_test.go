package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse-auth/gatehouse/internal/metricstest"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// series is what a real server exposes: metric family -> its series'
// label sets.
type series map[string][]map[string]string

func scrapeSeries(t *testing.T, url string) series {
	t.Helper()
	out := series{}
	for _, mf := range metricstest.Scrape(t, url) {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], labels)
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				withLE := map[string]string{"le": ""}
				for k, v := range labels {
					withLE[k] = v
				}
				out[mf.GetName()+"_bucket"] = append(out[mf.GetName()+"_bucket"], withLE)
				out[mf.GetName()+"_sum"] = append(out[mf.GetName()+"_sum"], labels)
				out[mf.GetName()+"_count"] = append(out[mf.GetName()+"_count"], labels)
			}
		}
	}
	return out
}

var (
	selectorRE = regexp.MustCompile(`\b((?:gatehouse|go|process)_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	byRE       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// TestGrafanaDashboardMatchesMetrics reads every query of
// deploy/grafana-dashboard.json and checks it against what a real server
// exposes: each metric exists, each label it matches or groups by exists,
// and each exact label value it selects is a series (so a renamed metric
// or outcome breaks this test, not the dashboard in production).
func TestGrafanaDashboardMatchesMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" { // the data source picker has no query
			exprs = append(exprs, v.Definition)
		}
	}

	// Queries of what only a PostgreSQL store exposes (group commit) are
	// checked against a server on PostgreSQL, the rest against one on
	// SQLite (the default).
	var pgExprs, sqliteExprs []string
	for _, expr := range exprs {
		if strings.Contains(expr, "gatehouse_db_rotation") {
			pgExprs = append(pgExprs, expr)
		} else {
			sqliteExprs = append(sqliteExprs, expr)
		}
	}
	p := start(t, t.TempDir(), nil)
	p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "nobody", "password": "x"})
	used := checkQueries(t, sqliteExprs, scrapeSeries(t, p.base+"/metrics"))
	if len(pgExprs) == 0 {
		t.Error("the dashboard shows nothing of group commit (gatehouse_db_rotation*)")
	}
	t.Run("postgres", func(t *testing.T) {
		pg := startDB(t, postgres.TestSchema(t), pgEnv)
		checkQueries(t, pgExprs, scrapeSeries(t, pg.base+"/metrics"))
	})
	// The metrics an operator pages on are all on the dashboard.
	for _, name := range []string{"gatehouse_logins_total", "gatehouse_refreshes_total", "gatehouse_sessions_revoked_total",
		"gatehouse_rate_limited_total", "gatehouse_csrf_refusals_total", "gatehouse_step_up_challenges_total",
		"gatehouse_websockets_open", "gatehouse_feed_long_polls", "gatehouse_revocation_sync_age_seconds",
		"gatehouse_password_hash_queue", "gatehouse_db_connections", "gatehouse_build_info"} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

// checkQueries checks each query against a server's series and returns
// the metrics the queries use.
func checkQueries(t *testing.T, exprs []string, got series) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, expr := range exprs {
		refs := selectorRE.FindAllStringSubmatch(expr, -1)
		if len(refs) == 0 && !strings.Contains(expr, "label_values") {
			t.Errorf("query names no metric: %s", expr)
		}
		labelsOf := map[string]bool{"instance": true} // added by the scrape
		for _, ref := range refs {
			name, sel := ref[1], ref[2]
			used[name] = true
			list, ok := got[name]
			if !ok {
				t.Errorf("%s: no such metric on /metrics (in %s)", name, expr)
				continue
			}
			for _, l := range list {
				for k := range l {
					labelsOf[k] = true
				}
			}
			for _, m := range matcherRE.FindAllStringSubmatch(sel, -1) {
				label, op, value := m[1], m[2], m[3]
				if label == "instance" {
					continue
				}
				found := false
				for _, l := range list {
					if _, has := l[label]; has && (op != "=" || l[label] == value) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s has no series with %s%s%q (in %s)", name, label, op, value, expr)
				}
			}
		}
		for _, by := range byRE.FindAllStringSubmatch(expr, -1) {
			for _, label := range strings.Split(by[1], ",") {
				if label = strings.TrimSpace(label); !labelsOf[label] {
					t.Errorf("grouped by %q, which no metric of the query has (in %s)", label, expr)
				}
			}
		}
	}
	return used
}
