package bench

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestRotateAlternatesOrder pins that over len(subjects) rounds every
// subject runs first once and each round keeps the cyclic order.
func TestRotateAlternatesOrder(t *testing.T) {
	subjects := []Subject{{Name: "native"}, {Name: "a"}, {Name: "b"}}
	want := [][]string{{"native", "a", "b"}, {"a", "b", "native"}, {"b", "native", "a"}, {"native", "a", "b"}}
	for r, w := range want {
		var got []string
		for _, s := range rotate(subjects, r) {
			got = append(got, s.Name)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("round %d: order %v, want %v", r, got, w)
		}
	}
	if subjects[0].Name != "native" {
		t.Errorf("rotate changed its argument: %v", subjects)
	}
}

// TestMetaOnlyNotRun: a MetaOnly subject (fastfs-nullfuse) runs the
// metadata jobs and no fio job, and the table says "not run" there, not
// "error".
func TestMetaOnlyNotRun(t *testing.T) {
	start := func(ctx context.Context) (string, func() error, error) {
		return t.TempDir(), func() error { return nil }, nil
	}
	meta := 0
	res, err := Run(context.Background(), Config{
		// Both MetaOnly, so that fio is never started here.
		Subjects: []Subject{{Name: "native", Start: start, MetaOnly: true}, {Name: "floor", Start: start, MetaOnly: true}},
		Jobs: []Job{
			{Name: "fio-job", Unit: "MiB/s", FIO: []string{"--this-is-never-run"}},
			{Name: "meta-job", Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { meta++; return 1, nil }},
		},
		Rounds: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if meta != 2 {
		t.Errorf("the metadata job ran %d times, want once per subject", meta)
	}
	if _, ok := res.Rows[0].Median["floor"]; ok {
		t.Error("the MetaOnly subject has a figure for the fio job")
	}
	var b bytes.Buffer
	res.WriteTable(&b)
	out := b.String()
	if !strings.Contains(out, "not run") || strings.Contains(out, "error") {
		t.Errorf("table:\n%s\nwant the floor's fio cell \"not run\" and no error line", out)
	}
}
