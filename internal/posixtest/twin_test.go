package posixtest

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestDiffLogs(t *testing.T) {
	ref := []step{{"open", "OK"}, {"stat", "reg mode=0644"}, {"read", "len=3"}}
	for _, c := range []struct {
		name string
		mnt  []step
		want []string // substrings, one per reported difference
	}{
		{"equal", ref, nil},
		{"value", []step{{"open", "OK"}, {"stat", "reg mode=0600"}, {"read", "len=3"}}, []string{`stat: mount got "reg mode=0600", reference (native) got "reg mode=0644"`}},
		{"two values", []step{{"open", "EIO"}, {"stat", "reg mode=0644"}, {"read", "len=0"}}, []string{`open: mount got "EIO"`, `read: mount got "len=0"`}},
		{"stopped early", ref[:1], []string{`step 1 "stat": missing on the mount`}},
		{"extra", append(append([]step{}, ref...), step{"x", "y"}), []string{`more steps`}},
		{"diverged", []step{{"open", "OK"}, {"read", "len=3"}}, []string{`diverged: mount at "read", reference at "stat"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := diffLogs(ref, c.mnt)
			if len(got) != len(c.want) {
				t.Fatalf("diffLogs: %d differences %q, want %d", len(got), got, len(c.want))
			}
			for i := range got {
				if !strings.Contains(got[i], c.want[i]) {
					t.Errorf("difference %d: %q, want it to contain %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestErrnoString(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "OK"},
		{syscall.ENOENT, "ENOENT"},
		{&wrapped{syscall.EXDEV}, "EXDEV"},
		{errors.New("boom"), "error: boom"},
	} {
		if got := errnoString(c.err); got != c.want {
			t.Errorf("errnoString(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "op /some/path: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestParseDirents(t *testing.T) {
	// Two records as getdents64 lays them out: ino, off, reclen, type, name, NUL, padding.
	rec := func(ino, off uint64, typ byte, name string) []byte {
		n := 19 + len(name) + 1
		n = (n + 7) &^ 7
		b := make([]byte, n)
		for i := 0; i < 8; i++ {
			b[i] = byte(ino >> (8 * i))
			b[8+i] = byte(off >> (8 * i))
		}
		b[16], b[17] = byte(n), byte(n>>8)
		b[18] = typ
		copy(b[19:], name)
		return b
	}
	buf := append(rec(1, 10, 4, "."), rec(77, 20, 8, "a-long-file-name")...)
	ds, err := parseDirents(buf)
	if err != nil || len(ds) != 2 || ds[1].name != "a-long-file-name" || ds[1].ino != 77 || ds[1].off != 20 || ds[0].name != "." {
		t.Fatalf("parseDirents: %+v, %v", ds, err)
	}
	if _, err := parseDirents(buf[:len(buf)-3]); err == nil {
		t.Error("parseDirents accepted a truncated record")
	}
}
