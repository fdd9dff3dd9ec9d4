package vhostuser_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// shmDevice is the fake device with one shared memory region.
type shmDevice struct {
	*fakeDevice
	sizes []uint64
}

func (d shmDevice) SharedMemoryRegions() []uint64 { return d.sizes }

const shmemProtocol = allProtocol | 1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM | 1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_FD

// startShm serves a shmDevice and negotiates want.
func startShm(t *testing.T, sizes []uint64, want uint64) (shmDevice, *vt.Frontend, chan error, uint64) {
	t.Helper()
	dev := shmDevice{newFake(1), sizes}
	b := vhostuser.NewBackend(dev)
	lg := &logBuf{}
	b.Log = slog.New(slog.NewTextHandler(lg, nil))
	f, c, err := vt.Pair()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(c) }()
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("back-end log:\n%s", lg)
		}
	})
	_, proto, _, err := f.Init(want)
	if err != nil {
		t.Fatal(err)
	}
	return dev, f, errc, proto
}

// startShmB is startShm for benchmarks: SHMEM negotiated, no log kept.
func startShmB(b *testing.B, sizes []uint64) (shmDevice, *vt.Frontend) {
	dev := shmDevice{newFake(1), sizes}
	be := vhostuser.NewBackend(dev)
	be.Log = slog.New(slog.DiscardHandler)
	f, c, err := vt.Pair()
	if err != nil {
		b.Fatal(err)
	}
	go be.Serve(c)
	b.Cleanup(func() { f.Close() })
	if _, _, _, err := f.Init(shmemProtocol); err != nil {
		b.Fatal(err)
	}
	return dev, f
}

func TestShmemOffered(t *testing.T) {
	// Without shared memory the bits are not offered.
	h := start(t, 1)
	p, err := h.f.GetU64(vhostuser.VHOST_USER_GET_PROTOCOL_FEATURES)
	if err != nil {
		t.Fatal(err)
	}
	if p&(1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM|1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_FD|1<<vhostuser.VHOST_USER_PROTOCOL_F_CONFIG) != 0 {
		t.Fatalf("protocol features %#x offer SHMEM, BACKEND_SEND_FD or CONFIG without shared memory", p)
	}
	// A zero-sized region is no region either.
	_, _, _, proto := startShm(t, []uint64{0}, shmemProtocol)
	if proto&(1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM) != 0 {
		t.Fatalf("SHMEM negotiated for a zero-sized region (%#x)", proto)
	}
	_, f, _, proto := startShm(t, []uint64{1 << 30}, shmemProtocol|1<<vhostuser.VHOST_USER_PROTOCOL_F_CONFIG)
	if want := uint64(shmemProtocol | 1<<vhostuser.VHOST_USER_PROTOCOL_F_CONFIG); proto != want {
		t.Fatalf("negotiated %#x, want %#x", proto, want)
	}
	// The config space is readable (vhost-user-device-pci,config_size=40).
	cfg := make([]byte, 12)
	le.PutUint32(cfg[4:], 40)
	if p, err := f.Call(vhostuser.VHOST_USER_GET_CONFIG, append(cfg, make([]byte, 40)...)); err != nil || len(p) != 52 || string(p[12:16]) != "myfs" {
		t.Fatalf("GET_CONFIG = %q, %v", p, err)
	}
	sizes, err := f.GetShmemConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 1 || sizes[0] != 1<<30 {
		t.Fatalf("GET_SHMEM_CONFIG = %v", sizes)
	}
}

// memfdWith returns a memfd holding b.
func memfdWith(t *testing.T, b []byte) *os.File {
	t.Helper()
	f, err := mem.NewMemfd("file", uint64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestShmemMapUnmap(t *testing.T) {
	const ps = 4096
	dev, f, errc, _ := startShm(t, []uint64{64 * ps}, shmemProtocol)
	w, err := vt.NewWindow(64 * ps)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := f.AttachWindow(w); err != nil {
		t.Fatal(err)
	}
	ch := dev.getChannel()
	if ch == nil || !ch.Shmem() {
		t.Fatalf("channel %v, shmem %v", ch, ch != nil && ch.Shmem())
	}
	content := bytes.Repeat([]byte("0123456789abcdef"), 4*ps/16)
	file := memfdWith(t, content)
	m := vhostuser.MMap{FdOffset: ps, ShmOffset: 8 * ps, Len: 2 * ps, Flags: vhostuser.VHOST_USER_FLAG_MAP_RW}
	if err := ch.ShmemMap(m, int(file.Fd())); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(8*ps, 2*ps), content[ps:3*ps]) {
		t.Fatal("window does not show the file's bytes")
	}
	copy(w.Bytes(8*ps, 4), "XYZW")
	got := make([]byte, 4)
	file.ReadAt(got, ps)
	if string(got) != "XYZW" {
		t.Fatalf("write through the window: file has %q", got)
	}
	// A map over it is refused by the (strict) front-end: errno EIO
	// (QEMU answers 1).
	if err := ch.ShmemMap(m, int(file.Fd())); !errors.Is(err, syscall.EIO) {
		t.Fatalf("overlapping map: %v, want EIO", err)
	}
	var re *vhostuser.RefusedError
	if err := ch.ShmemUnmap(vhostuser.MMap{ShmOffset: 8 * ps, Len: ps}); !errors.As(err, &re) || re.Value != 1 {
		t.Fatalf("partial unmap: %v, want a refusal", err)
	}
	if err := ch.ShmemUnmap(vhostuser.MMap{ShmOffset: 8 * ps, Len: 2 * ps}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(8*ps, 2*ps), make([]byte, 2*ps)) {
		t.Fatal("unmapped range is not zero")
	}
	// An errno the front-end sends, positive or negated, comes back.
	w.SetRefuse(func(vhostuser.BackendRequest, vhostuser.MMap) uint64 { return uint64(syscall.ENOSPC) })
	if err := ch.ShmemMap(m, int(file.Fd())); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("refused map: %v, want ENOSPC", err)
	}
	w.SetRefuse(func(vhostuser.BackendRequest, vhostuser.MMap) uint64 { v := -int64(syscall.EFAULT); return uint64(v) })
	if err := ch.ShmemMap(m, int(file.Fd())); !errors.Is(err, syscall.EFAULT) {
		t.Fatalf("refused map: %v, want EFAULT", err)
	}
	w.SetRefuse(nil)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	// A front-end that never answers: ETIMEDOUT after ShmemTimeout, and
	// the channel is closed so later requests fail at once.
	old := vhostuser.SetShmemTimeout(200 * time.Millisecond)
	defer vhostuser.SetShmemTimeout(old)
	w.Silent.Store(true)
	start := time.Now()
	if err := ch.ShmemMap(m, int(file.Fd())); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("silent front-end: %v, want ETIMEDOUT", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if err := ch.ShmemUnmap(m); !errors.Is(err, syscall.EIO) {
		t.Fatalf("after timeout: %v, want EIO", err)
	}
	f.Close()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestShmemNotNegotiated(t *testing.T) {
	dev, f, _, _ := startShm(t, []uint64{1 << 20}, allProtocol) // no SHMEM
	w, err := vt.NewWindow(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := f.AttachWindow(w); err != nil {
		t.Fatal(err)
	}
	ch := dev.getChannel()
	if ch.Shmem() {
		t.Fatal("Shmem() without SHMEM negotiated")
	}
	err = ch.ShmemMap(vhostuser.MMap{Len: 4096}, 0)
	if !errors.Is(err, syscall.EOPNOTSUPP) || !errors.Is(err, vhostuser.ErrShmemNotNegotiated) {
		t.Fatalf("map without SHMEM: %v", err)
	}
	if w.Requests() != 0 {
		t.Fatal("request sent without SHMEM negotiated")
	}
}

// FuzzDecodeMMap: DecodeMMap never panics, accepts only 40-byte payloads
// with zero padding, known flags and a non-wrapping non-empty range, and
// what it accepts encodes back to the same bytes.
func FuzzDecodeMMap(f *testing.F) {
	ok := make([]byte, 40)
	vhostuser.MMap{ShmID: 0, FdOffset: 0x200000, ShmOffset: 0x400000, Len: 0x200000, Flags: 1}.Put(ok)
	f.Add(ok)
	f.Add(make([]byte, 40))
	f.Add(make([]byte, 39))
	wrap := make([]byte, 40)
	vhostuser.MMap{ShmOffset: ^uint64(0), Len: 2}.Put(wrap)
	f.Add(wrap)
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := vhostuser.DecodeMMap(p)
		if err != nil {
			if m != (vhostuser.MMap{}) {
				t.Fatalf("error %v with a result %+v", err, m)
			}
			return
		}
		if len(p) != 40 || m.Len == 0 || m.Flags > 1 || m.ShmOffset+m.Len < m.ShmOffset || m.FdOffset+m.Len < m.FdOffset {
			t.Fatalf("accepted %x as %+v", p, m)
		}
		b := make([]byte, 40)
		m.Put(b)
		if !bytes.Equal(b, p) {
			t.Fatalf("round trip %x → %+v → %x", p, m, b)
		}
	})
}

// BenchmarkShmemMapUnmap: one SHMEM_MAP (fd passed) + SHMEM_UNMAP of 2 MiB
// over the back-end channel to the Go VMM window, answers included.
func BenchmarkShmemMapUnmap(b *testing.B) {
	dev, f := startShmB(b, []uint64{64 << 20})
	w, err := vt.NewWindow(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := f.AttachWindow(w); err != nil {
		b.Fatal(err)
	}
	file, err := mem.NewMemfd("file", 2<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	ch := dev.getChannel()
	m := vhostuser.MMap{Len: 2 << 20, Flags: vhostuser.VHOST_USER_FLAG_MAP_RW}
	for b.Loop() {
		if err := ch.ShmemMap(m, int(file.Fd())); err != nil {
			b.Fatal(err)
		}
		if err := ch.ShmemUnmap(m); err != nil {
			b.Fatal(err)
		}
	}
}
