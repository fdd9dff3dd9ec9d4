package passthrough

import (
	"fmt"
	"os"
	"sort"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
)

func openDir(t testing.TB, f *FS, ino fs.Inode) fs.Handle {
	t.Helper()
	var out fs.OpenOut
	if e := f.OpenDir(rootCtx, ino, 0, &out); e != 0 {
		t.Fatalf("OpenDir: %v", e)
	}
	return out.Handle
}

// readAll reads the whole directory from cookie off, perCall entries at a time.
func readAll(t testing.TB, f *FS, fh fs.Handle, off uint64, perCall int, plus bool) []dirEnt {
	t.Helper()
	var all []dirEnt
	for {
		s := &dirSink{plus: plus, max: perCall}
		if e := f.ReadDir(rootCtx, fs.RootInode, fh, off, s); e != 0 {
			t.Fatalf("ReadDir(%d): %v", off, e)
		}
		if len(s.ents) == 0 {
			return all
		}
		all = append(all, s.ents...)
		off = s.ents[len(s.ents)-1].Off
	}
}

func names(ents []dirEnt) []string {
	var n []string
	for _, e := range ents {
		n = append(n, e.name)
	}
	return n
}

func TestReadDirLarge(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	const n = 10000
	want := map[string]bool{".": true, "..": true}
	for i := range n {
		name := fmt.Sprintf("entry-%05d", i)
		if err := os.WriteFile(join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	fh := openDir(t, f, fs.RootInode)
	defer f.ReleaseDir(rootCtx, fs.RootInode, fh)
	all := readAll(t, f, fh, 0, 37, false)
	if len(all) != n+2 {
		t.Fatalf("got %d entries, want %d", len(all), n+2)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if !want[e.name] || seen[e.name] {
			t.Fatalf("unexpected or duplicate entry %q", e.name)
		}
		if e.Off == 0 {
			t.Fatalf("entry %q has cookie 0", e.name)
		}
		seen[e.name] = true
	}

	// Resume from every 97th cookie on a fresh handle, and on the same
	// handle (seekdir back): the stream must continue exactly as before.
	// Every 10th resume reads to the end; the others compare one batch.
	fh2 := openDir(t, f, fs.RootInode)
	defer f.ReleaseDir(rootCtx, fs.RootInode, fh2)
	for k, i := 0, 0; i < len(all); k, i = k+1, i+97 {
		for _, h := range []fs.Handle{fh, fh2} {
			var rest []dirEnt
			if k%10 == 0 {
				rest = readAll(t, f, h, all[i].Off, 500, false)
				if len(rest) != len(all)-i-1 {
					t.Fatalf("resume after %d: %d entries, want %d", i, len(rest), len(all)-i-1)
				}
			} else {
				s := &dirSink{max: 64}
				if e := f.ReadDir(rootCtx, fs.RootInode, h, all[i].Off, s); e != 0 {
					t.Fatal(e)
				}
				rest = s.ents
			}
			for j, e := range rest {
				if j >= 64 {
					break
				}
				if want := all[i+1+j]; e.name != want.name || e.Off != want.Off {
					t.Fatalf("resume after %d: entry %d is %q/%d, want %q/%d", i, j, e.name, e.Off, want.name, want.Off)
				}
			}
		}
	}
}

func TestReadDirPlus(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	for _, name := range []string{"a", "b", "c"} {
		writeFile(t, join(dir, name), name, 0o644)
	}
	os.Symlink("/etc/passwd", join(dir, "link"))
	fh := openDir(t, f, fs.RootInode)
	defer f.ReleaseDir(rootCtx, fs.RootInode, fh)

	// A sink that takes two entries: the third is looked up and refused,
	// so its lookup must be undone.
	s := &dirSink{plus: true, max: 2}
	if e := f.ReadDir(rootCtx, fs.RootInode, fh, 0, s); e != 0 {
		t.Fatal(e)
	}
	all := readAll(t, f, fh, 0, 0, true)
	if got := names(all); len(got) != 6 {
		t.Fatalf("entries %v", got)
	}
	for _, e := range all {
		if e.name == "." || e.name == ".." {
			if e.entry != nil {
				t.Errorf("%q has a plus entry", e.name)
			}
			continue
		}
		if e.entry == nil || e.entry.Ino == 0 || e.entry.Attr.Ino != e.Ino {
			t.Fatalf("%q: plus entry %+v", e.name, e.entry)
		}
		// First sink accepted ≤ 2 entries; the full read one more for each.
		want := uint64(1)
		for _, x := range s.ents {
			if x.name == e.name {
				want = 2
			}
		}
		if got := f.inodes.nlookupOf(e.entry.Ino); got != want {
			t.Errorf("%q: nlookup %d, want %d", e.name, got, want)
		}
		if e.name == "link" && e.entry.Attr.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("link entry mode %o", e.entry.Attr.Mode)
		}
	}
	// Nothing but the looked-up inodes and the root in the table.
	if got := f.inodes.count(); got != 5 {
		t.Errorf("table has %d inodes, want 5", got)
	}
	var got []string
	for _, e := range all {
		got = append(got, e.name)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[. .. a b c link]" {
		t.Errorf("names %v", got)
	}

	// ReadDir on a file handle, unknown handle.
	a := lookup(t, f, fs.RootInode, "a")
	fileH := open(t, f, a.Ino, syscall.O_RDONLY)
	wantErrno(t, "ReadDir on file", f.ReadDir(rootCtx, a.Ino, fileH, 0, &dirSink{}), syscall.ENOTDIR)
	wantErrno(t, "ReadDir on bad handle", f.ReadDir(rootCtx, a.Ino, 4242, 0, &dirSink{}), syscall.EBADF)
	wantErrno(t, "OpenDir on file", f.OpenDir(rootCtx, a.Ino, 0, &fs.OpenOut{}), syscall.ENOTDIR)
}
