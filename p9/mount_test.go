package p9

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// require9p skips unless the kernel can mount 9p over tcp (CONFIG_9P_FS and
// CONFIG_NET_9P, built in or as modules it can load). It does not fail in
// strict mode: the development and CI machines' kernel is built without
// 9p, so the kernel-client run of this test happens in the QEMU guest
// (internal/vmtest), whose kernel has it.
func require9p(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	has := func() bool {
		b, _ := os.ReadFile("/proc/filesystems")
		return bytes.Contains(b, []byte("\t9p\n"))
	}
	if !has() {
		exec.Command("modprobe", "-q", "9pnet_fd").Run()
		exec.Command("modprobe", "-q", "9p").Run()
	}
	if !has() {
		t.Skip("needs a kernel with 9p (CONFIG_9P_FS, CONFIG_NET_9P, trans fd/tcp): not in /proc/filesystems and modprobe 9p failed; this runs in the QEMU guest instead")
	}
}

// TestKernelMount mounts the server with the Linux v9fs client over tcp,
// in several cache modes, and runs system calls on it, served by
// fs/passthrough over a temp dir.
func TestKernelMount(t *testing.T) {
	require9p(t)
	for _, mode := range []string{"msize=262144,cache=none", "msize=1048576,cache=loose", "msize=65536,cache=mmap"} {
		t.Run(mode, func(t *testing.T) { kernelMount(t, mode) })
	}
}

func kernelMount(t *testing.T, mode string) {
	shared := t.TempDir()
	fsys, err := passthrough.New(shared, passthrough.Options{Xattr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	s := NewServer(fsys, &Options{Logf: t.Logf})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("FASTFS_P9_CAPTURE"); dir != "" {
		cl := &captureListener{Listener: l}
		l = cl
		defer cl.writeCorpus(t, dir) // runs after the unmount below
	}
	go s.Serve(l)
	defer s.Close()
	port := l.Addr().(*net.TCPAddr).Port

	mnt := t.TempDir()
	opts := "trans=tcp,port=" + strconv.Itoa(port) + ",version=9p2000.L,access=client," + mode
	if err := syscall.Mount("127.0.0.1", mnt, "9p", 0, opts); err != nil {
		t.Fatalf("mount -t 9p -o %s: %v", opts, err)
	}
	defer func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("umount: %v", err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	}()
	p := func(name string) string { return filepath.Join(mnt, name) }

	data := bytes.Repeat([]byte("9p over tcp "), 50000) // 600 KB: several Twrite/Tread
	if err := os.WriteFile(p("file"), data, 0644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p("file")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(shared, "file")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("host side: %d bytes, %v", len(got), err)
	}
	st, err := os.Stat(p("file"))
	if err != nil || st.Size() != int64(len(data)) || st.Mode().Perm() != 0644 {
		t.Fatalf("stat: %v %v", st, err)
	}
	// Created by root through an access=client mount: the client attaches
	// with n_uname 0 for root, and the file on the host is root's.
	if hst, err := os.Stat(filepath.Join(shared, "file")); err != nil || hst.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		t.Errorf("host owner of a file created by uid %d: %+v %v", os.Geteuid(), hst.Sys(), err)
	}
	if err := os.Truncate(p("file"), 10); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("file"), 0600); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p("file")); st.Size() != 10 || st.Mode().Perm() != 0600 {
		t.Errorf("after truncate+chmod: %v", st)
	}
	if err := os.MkdirAll(p("d/e"), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../file", p("d/link")); err != nil {
		t.Fatal(err)
	}
	if tgt, err := os.Readlink(p("d/link")); err != nil || tgt != "../file" {
		t.Errorf("readlink: %q %v", tgt, err)
	}
	if err := os.Link(p("file"), p("d/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("d/hard"), p("d/e/moved")); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(p("d"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "e,link" {
		t.Errorf("readdir d: %v", names)
	}
	if err := syscall.Setxattr(p("file"), "user.k", []byte("v"), 0); err != nil {
		t.Errorf("setxattr: %v", err)
	} else {
		buf := make([]byte, 16)
		if n, err := syscall.Getxattr(p("file"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
			t.Errorf("getxattr: %q %v", buf[:n], err)
		}
		if err := syscall.Removexattr(p("file"), "user.k"); err != nil {
			t.Errorf("removexattr: %v", err)
		}
	}
	f, err := os.OpenFile(p("file"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Errorf("fcntl F_SETLK: %v", err)
	}
	f.Close()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil || sfs.Type != int64(V9fsMagic) {
		t.Errorf("statfs: type %#x %v", sfs.Type, err)
	}
	if err := os.Remove(p("d/e/moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d/e")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
	if _, err := os.Stat(p("nope")); !os.IsNotExist(err) {
		t.Errorf("stat missing: %v", err)
	}

	// A directory of 300 entries takes several Treaddir round trips (once:
	// the cache mode does not change readdir, and in a TCG guest each
	// create costs milliseconds).
	bigDir := 0
	if strings.Contains(mode, "cache=none") {
		bigDir = 300
	}
	if err := os.Mkdir(p("big"), 0755); err != nil {
		t.Fatal(err)
	}
	for i := range bigDir {
		if err := os.WriteFile(p("big/entry-with-a-longish-name-"+strconv.Itoa(i)), nil, 0644); err != nil {
			t.Fatal(err)
		}
	}
	if ents, err := os.ReadDir(p("big")); err != nil || len(ents) != bigDir {
		t.Errorf("readdir big: %d entries, %v", len(ents), err)
	}

	// Concurrent I/O on several files: requests in flight at once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := p("par" + strconv.Itoa(i))
			want := bytes.Repeat([]byte{byte('a' + i)}, 128<<10+i)
			if err := os.WriteFile(name, want, 0644); err != nil {
				errs <- err
				return
			}
			got, err := os.ReadFile(name)
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New(name + ": read back differs")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// captureListener records what clients send, to seed the fuzz corpus from
// a real client: FASTFS_P9_CAPTURE=DIR writes one corpus file per distinct
// (type, size) T-message to DIR, in testdata/fuzz format.
type captureListener struct {
	net.Listener
	mu  sync.Mutex
	buf []byte
}

type captureConn struct {
	net.Conn
	l *captureListener
}

func (l *captureListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &captureConn{Conn: c, l: l}, nil
}

// Read records bytes as received. With one connection per mount the
// stream is whole messages back to back.
func (c *captureConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf = append(c.l.buf, p[:n]...)
	c.l.mu.Unlock()
	return n, err
}

func (l *captureListener) writeCorpus(t *testing.T, dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for b := l.buf; len(b) >= HeaderSize; {
		size := int(binary.LittleEndian.Uint32(b))
		if size < HeaderSize || size > len(b) {
			break
		}
		msg := b[:size]
		b = b[size:]
		key := strconv.Itoa(int(msg[4])) + "-" + strconv.Itoa(min(size, 64))
		if seen[key] {
			continue
		}
		seen[key] = true
		name := filepath.Join(dir, "linux-"+MsgType(msg[4]).String()+"-"+strconv.Itoa(size))
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(msg)) + ")\n"
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Errorf("capture: %v", err)
		}
	}
}
