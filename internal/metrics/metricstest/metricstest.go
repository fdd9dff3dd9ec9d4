// Package metricstest scrapes a metrics endpoint with the Prometheus text
// parser (prometheus/common/expfmt) for tests, and checks what every
// exposition must satisfy: histograms whose buckets are cumulative and
// whose +Inf bucket, _count and _sum agree.
package metricstest

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a scrape: metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (the Prometheus text format: no Accept header asking for
// anything else) and parses it with expfmt's text parser.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: Content-Type %q, want the text format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: the Prometheus text parser refused it: %v", url, err)
	}
	CheckHistograms(t, fams)
	return fams
}

// CheckHistograms fails t unless every histogram's buckets are sorted by
// upper bound with non-decreasing counts, and its count equals its last
// bucket's (the +Inf one, as the parser folds it) or exceeds every bucket,
// and its sum is finite and not negative.
func CheckHistograms(t testing.TB, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name, f := range fams {
		if f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range f.Metric {
			h := m.GetHistogram()
			where := fmt.Sprintf("%s%s", name, labelString(m))
			if h == nil {
				t.Errorf("%s: histogram family with a non-histogram sample", where)
				continue
			}
			if len(h.Bucket) == 0 {
				t.Errorf("%s: no _bucket lines", where)
				continue
			}
			prevLe, prevN := math.Inf(-1), uint64(0)
			for _, b := range h.Bucket {
				if b.GetUpperBound() <= prevLe || b.GetCumulativeCount() < prevN {
					t.Errorf("%s: bucket le=%g count %d after le=%g count %d: not cumulative", where, b.GetUpperBound(), b.GetCumulativeCount(), prevLe, prevN)
				}
				prevLe, prevN = b.GetUpperBound(), b.GetCumulativeCount()
			}
			if math.IsInf(prevLe, +1) && prevN != h.GetSampleCount() {
				t.Errorf("%s: +Inf bucket %d != _count %d", where, prevN, h.GetSampleCount())
			}
			if prevN > h.GetSampleCount() {
				t.Errorf("%s: bucket count %d > _count %d", where, prevN, h.GetSampleCount())
			}
			if s := h.GetSampleSum(); math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
				t.Errorf("%s: _sum %g", where, s)
			}
			if h.GetSampleCount() > 0 && h.GetSampleSum() == 0 {
				t.Errorf("%s: %d samples summing to 0 s", where, h.GetSampleCount())
			}
		}
	}
}

func labelString(m *dto.Metric) string {
	var kv []string
	for _, l := range m.Label {
		kv = append(kv, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(kv)
	return "{" + strings.Join(kv, ",") + "}"
}

// find returns the sample of family name whose labels include every
// "k=v" pair in want, or nil.
func (f Families) find(name string, want ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.Metric {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// Value is the counter or gauge value of the sample of name with the given
// "k=v" labels; ok is false if there is none.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	m := f.find(name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// Histogram is the histogram sample of name with the given labels, or nil.
func (f Families) Histogram(name string, labels ...string) *dto.Histogram {
	if m := f.find(name, labels...); m != nil {
		return m.Histogram
	}
	return nil
}

// Sum adds the values of every sample of name whose labels include the
// given ones.
func (f Families) Sum(name string, labels ...string) float64 {
	fam := f[name]
	if fam == nil {
		return 0
	}
	var s float64
	for _, m := range fam.Metric {
		one := Families{name: &dto.MetricFamily{Metric: []*dto.Metric{m}}}
		if v, ok := one.Value(name, labels...); ok {
			s += v
		}
	}
	return s
}

// Profile GETs a CPU profile of seconds from a net/http/pprof endpoint at
// base (http://ADDR) and fails t unless it parses as a pprof profile with
// a cpu sample type.
func Profile(t testing.TB, base string, seconds int) *profile.Profile {
	t.Helper()
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds)
	c := &http.Client{Timeout: time.Duration(seconds)*time.Second + 20*time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("pprof %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("pprof %s: %s: %s", url, resp.Status, b)
	}
	p, err := profile.Parse(resp.Body)
	if err != nil {
		t.Fatalf("pprof %s: not a profile: %v", url, err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("pprof %s: invalid profile: %v", url, err)
	}
	cpu := false
	for _, st := range p.SampleType {
		cpu = cpu || st.Type == "cpu"
	}
	if !cpu {
		t.Fatalf("pprof %s: sample types %v, want a cpu one", url, p.SampleType)
	}
	return p
}
