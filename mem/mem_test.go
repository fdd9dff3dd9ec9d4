package mem

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

func mustHeap(t testing.TB, gpa, size, ua uint64) *Region {
	t.Helper()
	r, err := NewHeapRegion(RegionDesc{GuestAddr: gpa, Size: size, UserAddr: ua})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustMemfd(t testing.TB, d RegionDesc) *Region {
	t.Helper()
	r, err := NewMemfdRegion(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegionDescValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    RegionDesc
		ok   bool
	}{
		{"ok", RegionDesc{GuestAddr: 0x1000, Size: 0x1000, UserAddr: 0x7f0000000000}, true},
		{"empty", RegionDesc{Size: 0}, false},
		{"gpa overflow", RegionDesc{GuestAddr: math.MaxUint64 - 10, Size: 11}, false},
		{"gpa ends at 2^64-1", RegionDesc{GuestAddr: math.MaxUint64 - 10, Size: 10}, true},
		{"uva overflow", RegionDesc{UserAddr: math.MaxUint64, Size: 1}, false},
		{"offset overflow", RegionDesc{MmapOffset: math.MaxInt64, Size: 1}, false},
		{"offset huge", RegionDesc{MmapOffset: math.MaxUint64, Size: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.d.validate(); (err == nil) != tc.ok {
				t.Fatalf("validate(%v) = %v, want ok=%v", tc.d, err, tc.ok)
			}
		})
	}
}

func TestMapMemfdOffset(t *testing.T) {
	f, err := NewMemfd("t", 3*4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []byte("hello guest")
	// A non-page-aligned offset: Map maps from 0 and adds the offset.
	if _, err := f.WriteAt(want, 4096+123); err != nil {
		t.Fatal(err)
	}
	d := RegionDesc{GuestAddr: 0x10000, Size: 2*4096 - 123, UserAddr: 0x5000, MmapOffset: 4096 + 123}
	r, err := Map(int(f.Fd()), d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tb, err := NewTable(r)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := tb.Slice(0x10000, uint64(len(want)))
	if !ok || !bytes.Equal(b, want) {
		t.Fatalf("Slice = %q, %v; want %q", b, ok, want)
	}
	// Writes go to the shared file.
	copy(b, "HELLO")
	got := make([]byte, 5)
	if _, err := f.ReadAt(got, 4096+123); err != nil || string(got) != "HELLO" {
		t.Fatalf("file has %q, %v", got, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := NewTable(r); err == nil {
		t.Fatal("NewTable accepted a closed region")
	}
}

func TestMapRejectsShortFile(t *testing.T) {
	f, err := NewMemfd("t", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r, err := Map(int(f.Fd()), RegionDesc{Size: 8192}); err == nil {
		r.Close()
		t.Fatal("Map accepted a region past the end of the file (would SIGBUS)")
	}
	if r, err := Map(int(f.Fd()), RegionDesc{Size: 4096, MmapOffset: 1}); err == nil {
		r.Close()
		t.Fatal("Map accepted offset+size past the end of the file")
	}
	if _, err := Map(-1, RegionDesc{Size: 4096}); err == nil {
		t.Fatal("Map accepted fd -1")
	}
}

func TestTableOverlap(t *testing.T) {
	a := mustHeap(t, 0x1000, 0x1000, 0x10000)
	for _, tc := range []struct {
		name string
		b    *Region
		ok   bool
	}{
		{"adjacent", mustHeap(t, 0x2000, 0x1000, 0x11000), true},
		{"below", mustHeap(t, 0, 0x1000, 0x20000), true},
		{"gpa overlap", mustHeap(t, 0x1fff, 0x10, 0x30000), false},
		{"gpa inside", mustHeap(t, 0x1800, 0x10, 0x30000), false},
		{"gpa covers", mustHeap(t, 0, 0x10000, 0x30000), false},
		{"uva overlap", mustHeap(t, 0x8000, 0x1000, 0x10800), false},
		{"same", a, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTable(a, tc.b)
			if (err == nil) != tc.ok {
				t.Fatalf("NewTable = %v, want ok=%v", err, tc.ok)
			}
			_, err = NewTable(tc.b, a)
			if (err == nil) != tc.ok {
				t.Fatalf("NewTable reversed = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := NewTable(nil); err == nil {
		t.Fatal("NewTable accepted nil")
	}
}

// twoRegions: [0x1000,0x3000) and [0x3000,0x4000) adjacent, [0x10000,0x11000)
// after a gap, and one ending at the top of the address space (2^64-1).
func twoRegions(t testing.TB) *Table {
	t.Helper()
	tb, err := NewTable(
		mustHeap(t, 0x3000, 0x1000, 0x7000_3000),
		mustHeap(t, 0x1000, 0x2000, 0x7000_1000),
		mustHeap(t, 0x10000, 0x1000, 0x9000_0000),
		mustHeap(t, math.MaxUint64-0x1000, 0x1000, 0xa000_0000),
	)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestTableSlice(t *testing.T) {
	tb := twoRegions(t)
	for _, tc := range []struct {
		name   string
		gpa, n uint64
		ok     bool
	}{
		{"start", 0x1000, 16, true},
		{"whole first", 0x1000, 0x2000, true},
		{"whole second", 0x3000, 0x1000, true},
		{"below all", 0, 1, false},
		{"before first", 0xfff, 2, false},
		{"straddles adjacent", 0x2ff0, 0x20, false},
		{"end of first", 0x2fff, 1, true},
		{"empty at end", 0x4000, 0, true},
		{"one past end", 0x4000, 1, false},
		{"gap", 0x5000, 1, false},
		{"too long", 0x10000, 0x1001, false},
		{"n huge", 0x10000, math.MaxUint64, false},
		{"gpa+n overflows", 0x10ff0, math.MaxUint64 - 0x8, false},
		{"top region", math.MaxUint64 - 0x1000, 0x1000, true},
		{"top last byte", math.MaxUint64 - 1, 1, true},
		{"top past", math.MaxUint64 - 1, 2, false},
		{"top end empty", math.MaxUint64, 0, true},
		{"top end", math.MaxUint64, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := tb.Slice(tc.gpa, tc.n)
			if ok != tc.ok {
				t.Fatalf("Slice(%#x, %#x) ok = %v, want %v", tc.gpa, tc.n, ok, tc.ok)
			}
			if ok && (uint64(len(b)) != tc.n || cap(b) != len(b)) {
				t.Fatalf("Slice(%#x, %#x) len %d cap %d", tc.gpa, tc.n, len(b), cap(b))
			}
			if !ok && b != nil {
				t.Fatal("failed Slice returned a view")
			}
		})
	}
}

func TestContaining(t *testing.T) {
	tb := twoRegions(t)
	for _, tc := range []struct {
		gpa, start uint64
		size       int
		ok         bool
	}{
		{0x1000, 0x1000, 0x2000, true},
		{0x2fff, 0x1000, 0x2000, true},
		{0x3000, 0x3000, 0x1000, true},
		{0x4000, 0, 0, false},
		{0xfff, 0, 0, false},
		{math.MaxUint64 - 1, math.MaxUint64 - 0x1000, 0x1000, true},
		{math.MaxUint64, 0, 0, false},
	} {
		start, view, ok := tb.Containing(tc.gpa)
		if ok != tc.ok || start != tc.start || len(view) != tc.size || cap(view) != len(view) {
			t.Errorf("Containing(%#x) = %#x, len %d, %v; want %#x, %d, %v", tc.gpa, start, len(view), ok, tc.start, tc.size, tc.ok)
		}
	}
}

func TestTableWritesLandInRegion(t *testing.T) {
	tb := twoRegions(t)
	b, _ := tb.Slice(0x3010, 4)
	copy(b, "abcd")
	got := make([]byte, 4)
	if _, err := tb.Region(1).ReadAt(got, 0x10); err != nil || string(got) != "abcd" {
		t.Fatalf("region 1 at 0x10 = %q, %v", got, err)
	}
}

func TestAppendIovecs(t *testing.T) {
	tb := twoRegions(t)
	for _, tc := range []struct {
		name   string
		gpa, n uint64
		want   []int // iovec lengths
	}{
		{"one", 0x1100, 0x100, []int{0x100}},
		{"spans adjacent", 0x2f00, 0x200, []int{0x100, 0x100}},
		{"whole both", 0x1000, 0x3000, []int{0x2000, 0x1000}},
		{"empty", 0x1000, 0, []int{}},
		{"into gap", 0x3f00, 0x200, nil},
		{"unmapped", 0x8000, 1, nil},
		{"overflow", math.MaxUint64 - 0xf, 0x20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]unix.Iovec, 1, 8)
			got, ok := tb.AppendIovecs(dst, tc.gpa, tc.n)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				if len(got) != 1 {
					t.Fatalf("failed AppendIovecs left %d iovecs, want the original 1", len(got))
				}
				return
			}
			if len(got) != 1+len(tc.want) {
				t.Fatalf("got %d iovecs, want %d", len(got)-1, len(tc.want))
			}
			gpa := tc.gpa
			for i, w := range tc.want {
				iov := got[1+i]
				if int(iov.Len) != w {
					t.Errorf("iov %d len %d, want %d", i, iov.Len, w)
				}
				view, _ := tb.Slice(gpa, uint64(w))
				if iov.Base != &view[0] {
					t.Errorf("iov %d base does not point at gpa %#x", i, gpa)
				}
				gpa += uint64(w)
			}
		})
	}
}

func TestUserToGuest(t *testing.T) {
	tb := twoRegions(t)
	for _, tc := range []struct {
		ua, gpa uint64
		ok      bool
	}{
		{0x7000_1000, 0x1000, true},
		{0x7000_2fff, 0x2fff, true},
		{0x7000_3000, 0x3000, true},
		{0x7000_4000, 0, false},
		{0x9000_0fff, 0x10fff, true},
		{0, 0, false},
	} {
		gpa, ok := tb.UserToGuest(tc.ua)
		if ok != tc.ok || gpa != tc.gpa {
			t.Errorf("UserToGuest(%#x) = %#x, %v; want %#x, %v", tc.ua, gpa, ok, tc.gpa, tc.ok)
		}
		if ok {
			ua, ok := tb.GuestToUser(gpa)
			if !ok || ua != tc.ua {
				t.Errorf("GuestToUser(%#x) = %#x, %v", gpa, ua, ok)
			}
		}
	}
}

func TestTableAllocs(t *testing.T) {
	tb := twoRegions(t)
	iov := make([]unix.Iovec, 0, 4)
	n := testing.AllocsPerRun(1000, func() {
		_, _ = tb.Slice(0x1100, 64)
		_ = tb.Segment(0x2f00, 0x1000)
		iov, _ = tb.AppendIovecs(iov[:0], 0x2f00, 0x200)
		_, _ = tb.UserToGuest(0x7000_3000)
		_, _, _ = tb.Containing(0x3000)
	})
	if n != 0 {
		t.Fatalf("lookups allocate %v per run, want 0", n)
	}
}

func BenchmarkSlice(b *testing.B) {
	tb := twoRegions(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tb.Slice(0x3100, 4096-0x100); !ok {
			b.Fatal("miss")
		}
	}
}

func FuzzSlice(f *testing.F) {
	f.Add(uint64(0x1000), uint64(16), uint64(0x1000), uint64(0x2000))
	f.Add(uint64(math.MaxUint64), uint64(2), uint64(0x1000), uint64(0x2000))
	f.Add(uint64(0x2ff0), uint64(0x20), uint64(0x3000), uint64(0x1000))
	f.Fuzz(func(t *testing.T, gpa, n, g2, s2 uint64) {
		s2 = s2%0x4000 + 1
		tb := twoRegions(t)
		if r, err := NewHeapRegion(RegionDesc{GuestAddr: g2, Size: s2, UserAddr: 0xb000_0000}); err == nil {
			regions := []*Region{r}
			for i := range tb.Len() {
				regions = append(regions, tb.Region(i))
			}
			if t2, err := NewTable(regions...); err == nil {
				tb = t2
			}
		}
		b, ok := tb.Slice(gpa, n)
		// Model: some region holds [gpa, gpa+n) entirely.
		want := false
		for i := range tb.Len() {
			d := tb.Region(i).Desc()
			if gpa >= d.GuestAddr && gpa-d.GuestAddr <= d.Size && n <= d.Size-(gpa-d.GuestAddr) {
				want = true
			}
		}
		if ok != want || (ok && uint64(len(b)) != n) {
			t.Fatalf("Slice(%#x, %#x) = len %d, %v; model says %v", gpa, n, len(b), ok, want)
		}
		iov, ok := tb.AppendIovecs(nil, gpa, n%0x10000)
		if ok {
			var total uint64
			for _, v := range iov {
				total += uint64(v.Len)
			}
			if total != n%0x10000 {
				t.Fatalf("iovecs cover %d bytes, want %d", total, n%0x10000)
			}
		}
	})
}

// TestMapBudget: Map refuses a mapping that would take the process's guest
// memory mappings past MaxMapped (a front-end's sparse file of many TiB
// costs it nothing and used to exhaust the address space: the Go runtime
// then died of "out of memory"), counts MmapOffset (the mapping starts at
// 0), and Close gives the bytes back.
func TestMapBudget(t *testing.T) {
	if as := addressSpace(); as < 1<<39 || as&(as-1) != 0 {
		t.Fatalf("address space %#x: want a power of two of at least 2^39", as)
	}
	if d := DefaultMaxMapped(); d != int64(addressSpace()/2) {
		t.Fatalf("DefaultMaxMapped = %d, want half the address space", d)
	}
	base := Mapped()
	defer SetMaxMapped(SetMaxMapped(base + 1<<20))
	f, err := NewMemfd("t", 1<<40) // sparse
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	r1, err := Map(fd, RegionDesc{Size: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := Mapped() - base; got != 512<<10 {
		t.Fatalf("Mapped grew by %d, want %d", got, 512<<10)
	}
	// 256 KiB at offset 512 KiB maps 768 KiB: past the budget.
	if r, err := Map(fd, RegionDesc{Size: 256 << 10, MmapOffset: 512 << 10}); err == nil {
		r.Close()
		t.Fatal("Map accepted a mapping past the budget (offset counted)")
	} else if !strings.Contains(err.Error(), "budget") {
		t.Fatalf("refusal does not name the budget: %v", err)
	}
	if r, err := Map(fd, RegionDesc{Size: 1 << 40}); err == nil {
		r.Close()
		t.Fatal("Map accepted 1 TiB past the budget")
	}
	if got := Mapped() - base; got != 512<<10 {
		t.Fatalf("refusals left Mapped at +%d, want +%d", got, 512<<10)
	}
	r2, err := Map(fd, RegionDesc{Size: 512 << 10})
	if err != nil {
		t.Fatalf("a mapping within the budget: %v", err)
	}
	r1.Close()
	r2.Close()
	if got := Mapped() - base; got != 0 {
		t.Fatalf("Close left Mapped at +%d", got)
	}
	// A failed mmap (fd -1 is refused by fstat; a directory by mmap)
	// gives its charge back.
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if r, err := Map(int(dir.Fd()), RegionDesc{Size: 4096}); err == nil {
		r.Close()
		t.Fatal("Map of a directory succeeded")
	}
	if got := Mapped() - base; got != 0 {
		t.Fatalf("a failed mmap left Mapped at +%d", got)
	}
}

// TestMapRejectsShortBlockDevice: a region past the end of a block device
// (a loop device over a 1 MiB file) is refused like one past the end of a
// regular file: fstat gives a block device no size, and touching the
// mapping past its end raises SIGBUS.
func TestMapRejectsShortBlockDevice(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireLoopDevice(t)
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ctl)
	back, err := os.CreateTemp(t.TempDir(), "blk")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if err := back.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	var dev int
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		dev, err = unix.Open(fmt.Sprintf("/dev/loop%d", n), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("opening /dev/loop%d: %v", n, err)
		}
		if err = unix.IoctlSetInt(dev, unix.LOOP_SET_FD, int(back.Fd())); err == nil {
			break
		}
		unix.Close(dev)
		if err != unix.EBUSY || try == 10 {
			t.Fatalf("LOOP_SET_FD: %v", err)
		}
	}
	defer unix.Close(dev)
	defer unix.IoctlSetInt(dev, unix.LOOP_CLR_FD, 0)
	if r, err := Map(dev, RegionDesc{Size: 2 << 20}); err == nil {
		r.Close()
		t.Fatal("Map accepted a region past the end of a 1 MiB block device")
	} else if !strings.Contains(err.Error(), "block device") {
		t.Fatalf("refusal does not say why: %v", err)
	}
	if r, err := Map(dev, RegionDesc{Size: 512 << 10, MmapOffset: 768 << 10}); err == nil {
		r.Close()
		t.Fatal("Map accepted offset+size past the end of the block device")
	}
	r, err := Map(dev, RegionDesc{Size: 1 << 20})
	if err != nil {
		t.Fatalf("a region the block device holds: %v", err)
	}
	r.Close()
}
