package fastfs_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/internal/vhostload"
	"github.com/fastfsd/fastfsd/vhostuser"
)

// TestServeVirtioFSListenerSessions serves on a socket the caller made
// (ServeVirtioFSListener) and checks what ends serving: by default a
// front-end that breaks the protocol ends it with that error;
// KeepAfterError awaits the next front-end, which is served; OneSession
// returns nil once its front-end left, with no cancel.
func TestServeVirtioFSListenerSessions(t *testing.T) {
	tree, pfs := loadTree(t)

	serve := func(t *testing.T, ctx context.Context, o *fastfs.VirtioFSOptions) (string, <-chan error) {
		sock := filepath.Join(t.TempDir(), "vfs.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- fastfs.ServeVirtioFSListener(ctx, pfs, l, o) }()
		return sock, errc
	}
	// broken sends a GET_FEATURES header announcing a payload larger than
	// any message: the framing is lost, the session ends.
	broken := func(t *testing.T, sock string) {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var h [12]byte
		binary.LittleEndian.PutUint32(h[0:], 1)     // VHOST_USER_GET_FEATURES
		binary.LittleEndian.PutUint32(h[4:], 1)     // version 1
		binary.LittleEndian.PutUint32(h[8:], 1<<20) // size
		if _, err := nc.Write(h[:]); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		nc.Read(b[:]) // until the back-end closes it
	}
	good := func(t *testing.T, sock string) {
		s, err := vhostload.Connect(vhostload.Config{Socket: sock, Queues: 1, Depth: 2, Tree: tree})
		if err != nil {
			t.Fatalf("front-end: %v", err)
		}
		r, err := s.Run(vhostload.Getattr, 10*time.Second, 10)
		if err != nil || r.Errors != 0 || r.Ops < 10 {
			t.Errorf("front-end: %d GETATTRs, %d errors (%s), %v; want ≥ 10 and no error", r.Ops, r.Errors, r.FirstError, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("front-end close: %v", err)
		}
	}
	wait := func(t *testing.T, errc <-chan error) error {
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("serving did not end within 10 s")
			return nil
		}
	}

	t.Run("default", func(t *testing.T) {
		sock, errc := serve(t, context.Background(), nil)
		broken(t, sock)
		if err := wait(t, errc); !errors.Is(err, vhostuser.ErrInvalidMessage) {
			t.Errorf("after a front-end broke the framing: %v, want vhostuser.ErrInvalidMessage", err)
		}
	})
	t.Run("KeepAfterError", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sock, errc := serve(t, ctx, &fastfs.VirtioFSOptions{KeepAfterError: true})
		broken(t, sock)
		good(t, sock)
		select {
		case err := <-errc:
			t.Fatalf("serving ended (%v) with KeepAfterError and no cancel", err)
		default:
		}
		cancel()
		if err := wait(t, errc); err != nil {
			t.Errorf("after cancel: %v", err)
		}
	})
	t.Run("OneSession", func(t *testing.T) {
		sock, errc := serve(t, context.Background(), &fastfs.VirtioFSOptions{OneSession: true})
		good(t, sock)
		if err := wait(t, errc); err != nil {
			t.Errorf("after the one front-end left: %v, want nil", err)
		}
	})
	t.Run("both", func(t *testing.T) {
		_, errc := serve(t, context.Background(), &fastfs.VirtioFSOptions{OneSession: true, KeepAfterError: true})
		if err := wait(t, errc); err == nil {
			t.Error("OneSession with KeepAfterError: no error")
		}
	})
}
