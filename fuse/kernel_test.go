package fuse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/sys"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// kernelMount mounts s on a temporary directory through /dev/fuse with a
// minimal read/Handle/write loop (the real transport is dataplane/fusedev)
// and unmounts it at cleanup. It checks the engine against the running
// kernel's FUSE client.
func kernelMount(t *testing.T, s *Server) string {
	t.Helper()
	return kernelServe(t, openDevFuse(t), s)
}

// openDevFuse opens /dev/fuse for kernelServe.
func openDevFuse(t *testing.T) int {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/fuse: %v", err)
	}
	return fd
}

// kernelServe mounts fd on a temporary directory and serves it with s.
func kernelServe(t *testing.T, fd int, s *Server) string {
	t.Helper()
	dir := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions", fd)
	if err := syscall.Mount("fastfs-enginetest", dir, "fuse.fastfs-enginetest", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		syscall.Close(fd)
		t.Fatalf("mount fuse on %s: %v", dir, err)
	}
	// Two workers, so that one can take INTERRUPT while the other is
	// blocked in the filesystem.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.NewRequest()
			buf := make([]byte, abi.InHeaderSize+abi.WriteInSize+s.maxWrite+4096)
			for {
				n, err := syscall.Read(fd, buf)
				switch {
				case err == syscall.EINTR || err == syscall.EAGAIN || err == syscall.ENOENT:
					continue
				case err != nil:
					if err != syscall.ENODEV {
						t.Errorf("read /dev/fuse: %v", err)
					}
					return
				}
				r.In = buf[:n]
				capture(buf[:n])
				m := s.Handle(r)
				if m == 0 {
					continue
				}
				if _, err := syscall.Write(fd, r.Out[:m]); err != nil && err != syscall.ENOENT {
					t.Errorf("write reply to %v: %v", abi.Opcode(ne.Uint32(buf[4:])), err)
				}
			}
		}()
	}
	// The connection's number in fusectl is the mount's device minor.
	var st syscall.Stat_t
	conn := ""
	if err := syscall.Stat(dir, &st); err == nil {
		conn = fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", st.Dev&0xff|(st.Dev>>12)&^0xff)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			// A request is stuck (a test bug): abort the connection so
			// the test binary can exit instead of hanging in the kernel.
			t.Errorf("workers still busy 10 s after unmount; aborting %s", conn)
			if conn != "" {
				os.WriteFile(conn, []byte("1"), 0)
			}
			<-done
		}
		syscall.Close(fd)
	})
	defusePoll(t, dir, s.opts.PollHack)
	return dir
}

func TestKernel(t *testing.T) {
	m := newMemFS()
	s := NewServer(m, Options{PollHack: true})
	dir := kernelMount(t, s)
	p := func(name string) string { return filepath.Join(dir, name) }

	// The first access waits for INIT.
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("stat mount: %v", err)
	}
	ag, ok := s.Agreed()
	if !ok {
		t.Fatal("no INIT agreed")
	}
	t.Logf("agreed 7.%d flags %v max_write %d max_pages %d", ag.Minor, ag.Flags, ag.MaxWrite, ag.MaxPages)
	if ag.Flags&abi.InitHandleKillprivV2 == 0 || ag.Flags&abi.InitDoReaddirplus == 0 || !m.info.KillPrivV2 {
		t.Errorf("HANDLE_KILLPRIV_V2/READDIRPLUS not agreed: %v", ag.Flags)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: one WRITE at max_write
	if err := os.WriteFile(p("file"), data, 0o640); err != nil {
		t.Fatalf("write file: %v", err)
	}
	got, err := os.ReadFile(p("file"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes (want %d), %v", len(got), len(data), err)
	}
	fi, err := os.Stat(p("file"))
	if err != nil || fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat file: %v %v", fi, err)
	}
	if err := os.Truncate(p("file"), 10); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	if err := os.Chmod(p("file"), 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if fi, err := os.Stat(p("file")); err != nil || fi.Size() != 10 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after truncate/chmod: %v %v", fi, err)
	}

	if err := os.Mkdir(p("dir"), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	for i := range 100 {
		if err := os.WriteFile(p(fmt.Sprintf("dir/entry-with-a-longish-name-%03d", i)), nil, 0o644); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	ents, err := os.ReadDir(p("dir"))
	if err != nil || len(ents) != 100 || ents[42].Name() != "entry-with-a-longish-name-042" || ents[0].Type() != 0 {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	if err := os.Rename(p("dir/entry-with-a-longish-name-000"), p("moved")); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if err := os.Symlink("file", p("link")); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if target, err := os.Readlink(p("link")); err != nil || target != "file" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if err := syscall.Setxattr(p("file"), "user.test", []byte("xattr-value"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	xb := make([]byte, 64)
	if n, err := syscall.Getxattr(p("file"), "user.test", xb); err != nil || string(xb[:n]) != "xattr-value" {
		t.Fatalf("getxattr: %q %v", xb[:max(n, 0)], err)
	}
	if n, err := syscall.Listxattr(p("file"), xb); err != nil || string(xb[:n]) != "user.test\x00" {
		t.Fatalf("listxattr: %q %v", xb[:max(n, 0)], err)
	}
	if err := syscall.Removexattr(p("file"), "user.test"); err != nil {
		t.Fatalf("removexattr: %v", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks != 1<<20 || st.Namelen != 255 {
		t.Fatalf("statfs: %+v %v", st, err)
	}
	// Names the engine must refuse never reach the filesystem.
	long := p(string(bytes.Repeat([]byte("n"), 256)))
	if _, err := os.Stat(long); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("stat of a 256-byte name: %v, want ENAMETOOLONG", err)
	}
	if err := os.Remove(p("moved")); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	if err := os.RemoveAll(p("dir")); err != nil {
		t.Fatalf("remove dir: %v", err)
	}
	names, _ := os.ReadDir(dir)
	var left []string
	for _, e := range names {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"file", "link"}) {
		t.Errorf("left in root: %q", left)
	}
	if s.Panics() != 0 {
		t.Errorf("%d panics", s.Panics())
	}
}

// TestKernelRoundTrip reports the latency of one request through the
// kernel and the engine (a minimal single-threaded loop, not the real
// transport): GETXATTR of a missing name, which the kernel never caches.
func TestKernelRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	m := newMemFS()
	s := NewServer(m, Options{})
	dir := kernelMount(t, s)
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	xb := make([]byte, 8)
	const n = 20000
	before := m.getxattrs.Load()
	start := time.Now()
	for range n {
		if _, err := syscall.Getxattr(f, "user.none", xb); err != syscall.ENODATA {
			t.Fatalf("getxattr: %v", err)
		}
	}
	took := time.Since(start)
	// The kernel caches no xattrs for FUSE: every getxattr(2) must be one
	// GETXATTR reaching the filesystem through the engine.
	if got := m.getxattrs.Load() - before; got != n {
		t.Fatalf("%d getxattr calls reached the filesystem %d times, want %d (one round trip each)", n, got, n)
	}
	t.Logf("GETXATTR round trip through kernel + engine: %v", took/n)
}

// memBacking registers passthrough backing files on a /dev/fuse fd.
type memBacking struct {
	dev    int
	mu     sync.Mutex
	opened []int32
	closed []int32
}

func (b *memBacking) Open(fd int) (int32, syscall.Errno) {
	id, e := sys.FuseBackingOpen(b.dev, fd)
	if e == 0 {
		b.mu.Lock()
		b.opened = append(b.opened, id)
		b.mu.Unlock()
	}
	return id, e
}

func (b *memBacking) Close(id int32) syscall.Errno {
	b.mu.Lock()
	b.closed = append(b.closed, id)
	b.mu.Unlock()
	return sys.FuseBackingClose(b.dev, id)
}

// passFS serves every regular file's reads and writes from one host file
// through FUSE passthrough.
type passFS struct {
	*memFS
	fd int
}

func (p *passFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if e := p.memFS.Open(ctx, ino, flags, openFlags, out); e != 0 {
		return e
	}
	out.Flags |= fs.OpenPassthrough
	out.PassthroughFd = p.fd
	return 0
}

func (p *passFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	return syscall.EIO // passthrough: the server must see no READ
}

func TestKernelPassthrough(t *testing.T) {
	dev := openDevFuse(t)
	host, err := os.Create(filepath.Join(t.TempDir(), "backing"))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if _, err := host.WriteString("from the backing file\n"); err != nil {
		t.Fatal(err)
	}
	back := &memBacking{dev: dev}
	pfs := &passFS{memFS: newMemFS(), fd: int(host.Fd())}
	s := NewServer(pfs, Options{Backing: back})
	dir := kernelServe(t, dev, s)
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ag, _ := s.Agreed(); ag.Flags&abi.InitPassthrough == 0 {
		testutil.RequireCommand(t, "kernel-with-CONFIG_FUSE_PASSTHROUGH") // skips (or fails in strict mode) naming what is missing
	}
	got, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatalf("read through passthrough: %v", err)
	}
	if string(got) != "from the backing file\n" {
		t.Fatalf("read %q: not served by the backing file", got)
	}
	// RELEASE is sent asynchronously after the last close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		back.mu.Lock()
		opened, closed := slices.Clone(back.opened), slices.Clone(back.closed)
		back.mu.Unlock()
		if len(opened) > 0 && len(closed) == len(opened) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backing ids opened %v, closed %v (want all closed at RELEASE)", opened, closed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockFS blocks the first SETLKW until it is interrupted, and grants the
// next ones.
type lockFS struct {
	*memFS
	blocked     chan struct{}
	mu          sync.Mutex
	waits       int // SETLKW requests seen
	interrupted int // of which ended by an interrupt
}

func (l *lockFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	if !wait {
		return 0
	}
	l.mu.Lock()
	l.waits++
	first := l.waits == 1
	l.mu.Unlock()
	if !first {
		return 0
	}
	l.blocked <- struct{}{}
	for !ctx.Interrupted() {
		time.Sleep(time.Millisecond)
	}
	l.mu.Lock()
	l.interrupted++
	l.mu.Unlock()
	return syscall.EINTR
}

func (l *lockFS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	*out = fs.Lock{Type: syscall.F_UNLCK}
	return 0
}

// TestKernelInterrupt: a signal to a thread blocked in F_SETLKW makes the
// kernel send FUSE_INTERRUPT, which reaches the blocked request on the
// other worker; it answers EINTR. Locking is restartable and Go's signal
// handlers have SA_RESTART, so the kernel then sends SETLKW again, which
// the filesystem grants.
func TestKernelInterrupt(t *testing.T) {
	lfs := &lockFS{memFS: newMemFS(), blocked: make(chan struct{}, 1)}
	s := NewServer(lfs, Options{Locks: true, PollHack: true})
	dir := kernelMount(t, s)
	name := filepath.Join(dir, "locked")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(name, syscall.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 10}
	if err := syscall.FcntlFlock(uintptr(fd), syscall.F_GETLK, &lk); err != nil || lk.Type != syscall.F_UNLCK {
		t.Fatalf("F_GETLK: %v, type %d", err, lk.Type)
	}
	tid := make(chan int, 1)
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the signal goes to this thread; it dies with the goroutine
		tid <- syscall.Gettid()
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Len: 10}
		res <- syscall.FcntlFlock(uintptr(fd), syscall.F_SETLKW, &lk)
	}()
	id := <-tid
	select {
	case <-lfs.blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("F_SETLKW never reached the filesystem")
	}
	// SIGURG: the Go runtime handles (and otherwise ignores) it.
	if err := syscall.Tgkill(os.Getpid(), id, syscall.SIGURG); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Errorf("F_SETLKW after the restart: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("F_SETLKW not interrupted")
	}
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	if lfs.waits != 2 || lfs.interrupted != 1 {
		t.Errorf("SETLKW seen %d times, %d interrupted; want 2, 1", lfs.waits, lfs.interrupted)
	}
}

// captureMu guards captured.
var captureMu sync.Mutex

// captured holds the opcodes already written by capture.
var captured = map[abi.Opcode]bool{}

// capture writes the first request of each opcode the kernel sends to
// $FASTFS_FUSE_CAPTURE in the fuzz corpus format: run the kernel tests with
// it set to testdata/fuzz/FuzzHandle to refresh FuzzHandle's seeds from a
// real kernel.
func capture(in []byte) {
	dir := os.Getenv("FASTFS_FUSE_CAPTURE")
	if dir == "" || len(in) < abi.InHeaderSize || len(in) > 8192 {
		return
	}
	op := abi.Opcode(ne.Uint32(in[4:]))
	captureMu.Lock()
	defer captureMu.Unlock()
	if captured[op] {
		return
	}
	captured[op] = true
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(false)\n", in)
	os.WriteFile(filepath.Join(dir, "kernel-6.18-"+op.String()), []byte(body), 0o644)
}
