package flame

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

func TestTreeAndSVG(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	main, read, write := fn(1, "main.main"), fn(2, "pkg.read"), fn(3, "pkg.write")
	loc := func(id uint64, f *profile.Function) *profile.Location {
		return &profile.Location{ID: id, Line: []profile.Line{{Function: f}}}
	}
	lm, lr, lw := loc(1, main), loc(2, read), loc(3, write)
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lr, lm}, Value: []int64{3, 300}},
			{Location: []*profile.Location{lw, lm}, Value: []int64{1, 100}},
			{Location: []*profile.Location{lm}, Value: []int64{1, 100}},
		},
		Function: []*profile.Function{main, read, write},
		Location: []*profile.Location{lm, lr, lw},
	}
	root := Tree(p, 1)
	if root.Value != 500 || root.Children["main.main"].Value != 500 || root.Children["main.main"].Children["pkg.read"].Value != 300 {
		t.Fatalf("bad tree: %+v", root.Children["main.main"])
	}
	top := Top(root, 2)
	if len(top) != 2 || !strings.HasPrefix(top[0], "pkg.read 60.0%") {
		t.Fatalf("Top = %v", top)
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, root, "test", 800); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg", "pkg.read (300 samples, 60.00%)", "main.main (500 samples, 100.00%)", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
