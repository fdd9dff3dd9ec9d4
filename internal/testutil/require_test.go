package testutil

import (
	"testing"
)

// fakeTB records how a Require* helper ended the test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = true
	f.msg = args[0].(string)
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = true; f.msg = format }

func TestSkipOrFail(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "lenient", true: "strict"}[strict], func(t *testing.T) {
			t.Setenv("CI", "")
			t.Setenv("FASTFSD_TEST_STRICT", map[bool]string{false: "0", true: "1"}[strict])
			f := &fakeTB{}
			RequireCommand(f, "/nonexistent/fastfsd-no-such-tool")
			if f.failed != strict || f.skipped == strict {
				t.Fatalf("strict=%v: failed=%v skipped=%v", strict, f.failed, f.skipped)
			}
			f = &fakeTB{}
			RequireCommand(f, "sh")
			if f.failed || f.skipped {
				t.Fatalf("sh is present but the helper ended the test: %q", f.msg)
			}
		})
	}
}

func TestStrictFromCI(t *testing.T) {
	t.Setenv("FASTFSD_TEST_STRICT", "")
	t.Setenv("CI", "true")
	if !Strict() {
		t.Fatal("CI=true must turn strict mode on")
	}
	t.Setenv("CI", "")
	if Strict() {
		t.Fatal("strict mode on without CI or FASTFSD_TEST_STRICT")
	}
}
