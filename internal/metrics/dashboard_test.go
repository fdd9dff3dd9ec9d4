package metrics

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/metrics/metricstest"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// TestDashboard keeps docs/grafana/fastfsd.json true to what the handler
// serves: every metric a panel queries exists in a scrape, and every label
// a query groups by is a label of the metrics it groups.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana/fastfsd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var reg stats.Registry
	w := reg.NewSet("fuse", func(uint32) string { return "READ" }).NewWorker()
	w.Observe(15, 2, 4096, time.Microsecond)
	srv := httptest.NewServer(Handler(&reg))
	defer srv.Close()
	fams := metricstest.Scrape(t, srv.URL)

	name := regexp.MustCompile(`\b(fastfsd|process|go)_[a-z0-9_]+`)
	by := regexp.MustCompile(`by \(([^)]*)\)`)
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			var used []string
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := m
				if fams[m] == nil {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if b, ok := strings.CutSuffix(m, suf); ok && fams[b] != nil {
							base = b
						}
					}
				}
				if fams[base] == nil {
					t.Errorf("panel %q queries %s, which the handler does not serve", p.Title, m)
					continue
				}
				used = append(used, base)
			}
			for _, g := range by.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					l = strings.TrimSpace(l)
					for _, m := range used {
						if l == "le" && fams[m].GetType().String() == "HISTOGRAM" {
							continue
						}
						found := false
						for _, s := range fams[m].Metric {
							for _, lp := range s.Label {
								found = found || lp.GetName() == l
							}
						}
						if !found {
							t.Errorf("panel %q groups %s by %q, a label it does not have", p.Title, m, l)
						}
					}
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}
