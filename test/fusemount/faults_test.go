package fusemount

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane/fusedev"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse"
)

// laterMounts is the sandbox for tests that mount a filesystem inside
// the export after fastfsd started: --sandbox=namespace serves from a
// mount namespace copied at start, which sees such a mount only where the
// host's mount is shared (docs/sandbox.md); chroot and none serve from
// the host's namespace (none also in a -race build, which refuses chroot).
const laterMounts = "--sandbox=none"

// TestBackingENOSPC serves a full filesystem (a 1 MiB tmpfs mounted on a
// directory of the export, so a submount as well): the client's write or
// fsync fails with ENOSPC, and once space is freed everything works,
// including on the rest of the mount.
func TestBackingENOSPC(t *testing.T) {
	bin := requirements(t)
	for _, flags := range [][]string{{"--cache=auto"}, {"--cache=auto", "--passthrough=false"}, {"--cache=never"}} {
		t.Run(flags[len(flags)-1], func(t *testing.T) {
			m := startMount(t, bin, append(flags, laterMounts)...)
			small := filepath.Join(m.export, "small")
			if err := os.Mkdir(small, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m,mode=0777"); err != nil {
				t.Fatalf("mount a small tmpfs: %v", err)
			}
			// Lazily: fastfsd, stopped after this runs, holds it open.
			t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
			p := filepath.Join(m.mnt, "small", "big")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			block := bytes.Repeat([]byte("x"), 64<<10)
			var werr error
			for i := 0; i < 64 && werr == nil; i++ { // 4 MiB into 1 MiB
				_, werr = f.Write(block)
			}
			if werr == nil {
				werr = f.Sync()
			}
			cerr := f.Close()
			if werr == nil {
				werr = cerr
			}
			if !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("writing 4 MiB into a 1 MiB filesystem through the mount: %v, want ENOSPC", werr)
			}
			t.Logf("client saw: %v", werr)
			// Nothing else broke: free the space, write, read back, and
			// the rest of the mount answers.
			if err := os.Remove(p); err != nil {
				t.Fatalf("remove after ENOSPC: %v", err)
			}
			// The space comes back once the client's RELEASE and FORGET
			// of the removed file (both asynchronous) let fastfsd close
			// its fds of it, as with any open-unlinked file.
			freed := time.Now()
			for {
				var sfs unix.Statfs_t
				if err := unix.Statfs(small, &sfs); err != nil {
					t.Fatal(err)
				}
				if sfs.Bfree*uint64(sfs.Bsize) >= 512<<10 {
					break
				}
				if time.Since(freed) > 10*time.Second {
					t.Fatalf("the removed file's space is still in use 10 s later (%d bytes free): fastfsd keeps it open", sfs.Bfree*uint64(sfs.Bsize))
				}
				time.Sleep(10 * time.Millisecond) // the client's FORGET has no event to wait for
			}
			t.Logf("space back %v after the remove", time.Since(freed).Round(time.Millisecond))
			if err := os.WriteFile(filepath.Join(m.mnt, "small", "ok"), []byte("fits"), 0o644); err != nil {
				t.Fatalf("write after freeing space: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(m.mnt, "small", "ok")); err != nil || string(b) != "fits" {
				t.Fatalf("read back: %q, %v", b, err)
			}
			if err := os.WriteFile(filepath.Join(m.mnt, "elsewhere"), []byte("x"), 0o644); err != nil {
				t.Fatalf("write outside the full filesystem: %v", err)
			}
		})
	}
}

// TestKill9DuringWrites kills fastfsd (SIGKILL) while a client writes and
// fsyncs: the mount then answers ENOTCONN (it does not hang), umount
// removes it, every block written before an fsync that succeeded is in the
// backing file, and fastfsd mounts again on the same mount point.
func TestKill9DuringWrites(t *testing.T) {
	bin := requirements(t)
	m := startMount(t, bin)
	p := filepath.Join(m.mnt, "log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const bs = 4096
	blockOf := func(i int) []byte { return bytes.Repeat([]byte{byte(i%251) + 1}, bs) }
	durable, written := 0, 0
	killed := make(chan struct{})
	go func() {
		time.Sleep(500 * time.Millisecond)
		m.exitExpected = true
		m.cmd.Process.Kill()
		close(killed)
	}()
	var werr error
	for werr == nil {
		if _, werr = f.Write(blockOf(written)); werr != nil {
			break
		}
		written++
		if written%8 == 0 {
			if werr = f.Sync(); werr == nil {
				durable = written
			}
		}
	}
	<-killed
	<-m.exited
	t.Logf("write load: %d blocks written, %d covered by a successful fsync; then %v", written, durable, werr)
	if durable == 0 {
		t.Fatal("no fsync succeeded before the kill: nothing to check")
	}
	if !errors.Is(werr, syscall.ENOTCONN) && !errors.Is(werr, syscall.ECONNABORTED) {
		t.Errorf("write after SIGKILL: %v, want ENOTCONN", werr)
	}
	var st unix.Stat_t
	done := make(chan error, 1)
	go func() { done <- unix.Stat(p, &st) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("stat on the dead mount: %v, want ENOTCONN", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stat on the mount of a killed fastfsd hangs")
	}
	f.Close()
	if err := unix.Unmount(m.mnt, 0); err != nil {
		t.Fatalf("umount of the dead mount: %v", err)
	}
	if fst := mountInfo(t, m.mnt); fst != "" {
		t.Fatalf("%s still mounted (%s) after umount", m.mnt, fst)
	}
	got, err := os.ReadFile(filepath.Join(m.export, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < durable*bs {
		t.Fatalf("backing file has %d bytes, but %d blocks (%d bytes) were fsynced", len(got), durable, durable*bs)
	}
	for i := range durable {
		if !bytes.Equal(got[i*bs:(i+1)*bs], blockOf(i)) {
			t.Fatalf("block %d of %d fsynced blocks differs in the backing file", i, durable)
		}
	}
	// A restart mounts again on the same mount point and sees the data.
	m.start(t, 0, bin)
	b, err := os.ReadFile(p)
	if err != nil || len(b) < durable*bs {
		t.Fatalf("after restart: read %d bytes, %v; want at least %d", len(b), err, durable*bs)
	}
}

// eioFS is a passthrough filesystem whose READs of one file fail with
// EIO: a backing store with a bad block, served in-process through FUSE
// so that fastfsd's own reads of it fail as a disk's would.
type eioFS struct {
	*passthrough.FS
	bad atomic.Uint64 // inode whose reads fail; 0: none
}

func (f *eioFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	e := f.FS.Lookup(ctx, parent, name, out)
	if e == 0 && string(name) == "bad" {
		f.bad.Store(uint64(out.Ino))
	}
	return e
}

func (f *eioFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if uint64(ino) == f.bad.Load() {
		return syscall.EIO
	}
	return f.FS.Read(ctx, ino, fh, off, size, dst)
}

// TestBackingEIO: a file of the export whose reads fail with EIO on the
// host (it lives on a FUSE filesystem that answers EIO, mounted inside the
// export) reads as EIO through fastfsd, and the rest works: other files
// on the same backing filesystem, writes to the bad file's neighbours, and
// the mount as a whole. The backing FUSE filesystem makes no file handles,
// so with the default --inode-file-handles=prefer its inodes keep their fds.
func TestBackingEIO(t *testing.T) {
	bin := requirements(t)
	for _, flags := range [][]string{{"--cache=auto"}, {"--cache=never"}} {
		t.Run(flags[0], func(t *testing.T) {
			m := startMount(t, bin, append(flags, laterMounts)...)
			src, faulty := filepath.Join(m.top, "faulty-src"), filepath.Join(m.export, "faulty")
			for _, d := range []string{src, faulty} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(src, "bad"), []byte("unreadable"), 0o644)
			os.WriteFile(filepath.Join(src, "good"), []byte("readable"), 0o644)
			pfs, err := passthrough.New(src, passthrough.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer pfs.Close()
			conn, err := fusedev.Mount(faulty, fusedev.MountOptions{AllowOther: true, Source: "eio"})
			if err != nil {
				t.Fatalf("mount the faulty backing filesystem: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() {
				served <- conn.Serve(ctx, &eioFS{FS: pfs}, fuse.Options{}, fusedev.ServeOptions{Workers: 1})
			}()
			// fastfsd holds files of it open: stop fastfsd first (the
			// later cleanup then finds it stopped), then this.
			t.Cleanup(func() {
				m.stop(t)
				m.exitExpected = true
				unix.Unmount(faulty, unix.MNT_DETACH)
				cancel()
				select {
				case <-served:
				case <-time.After(10 * time.Second):
					t.Error("faulty backing filesystem did not stop")
				}
				conn.Close()
			})
			// The host itself sees EIO.
			if _, err := os.ReadFile(filepath.Join(faulty, "bad")); !errors.Is(err, syscall.EIO) {
				t.Fatalf("host read of the bad file: %v, want EIO (the fault is not in place)", err)
			}
			b, err := os.ReadFile(filepath.Join(m.mnt, "faulty", "bad"))
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("client read of a file the host cannot read: %q, %v; want EIO", b, err)
			}
			t.Logf("client saw: %v", err)
			if b, err := os.ReadFile(filepath.Join(m.mnt, "faulty", "good")); err != nil || string(b) != "readable" {
				t.Errorf("good file next to the bad one: %q, %v", b, err)
			}
			if err := os.WriteFile(filepath.Join(m.mnt, "faulty", "new"), []byte("written"), 0o644); err != nil {
				t.Errorf("write next to the bad file: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(m.mnt, "faulty", "new")); err != nil || string(b) != "written" {
				t.Errorf("read back next to the bad file: %q, %v", b, err)
			}
			if err := os.WriteFile(filepath.Join(m.mnt, "elsewhere"), []byte("x"), 0o644); err != nil {
				t.Errorf("write elsewhere on the mount: %v", err)
			}
			// The same file fails again, the same way (nothing cached a
			// half-read).
			if _, err := os.ReadFile(filepath.Join(m.mnt, "faulty", "bad")); !errors.Is(err, syscall.EIO) {
				t.Errorf("second client read of the bad file: %v, want EIO", err)
			}
		})
	}
}
