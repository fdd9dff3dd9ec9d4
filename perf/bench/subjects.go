package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const fuseSuperMagic = 0x65735546

// Tmpfs is the native baseline: a fresh tmpfs mounted at dir (so the
// comparison is against memory, not a disk with its own caching traps:
// fio's default invalidate=1 drops the page cache of a native ext4 file
// before a job but not of a FUSE passthrough's backing file, which makes
// the comparison wrong by up to 50×).
func Tmpfs(name, dir string) Subject {
	return Subject{Name: name, Start: func(ctx context.Context) (string, func() error, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, err
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8g,mode=0755"); err != nil {
			return "", nil, fmt.Errorf("mount tmpfs on %s: %w; run as root", dir, err)
		}
		return dir, func() error { return unix.Unmount(dir, unix.MNT_DETACH) }, nil
	}}
}

// FUSEDaemon runs argv (a FUSE server that mounts on mnt and stays in the
// foreground), waits until mnt is a FUSE mount, and on stop sends SIGTERM,
// waits, and detaches the mount if the daemon left it.
func FUSEDaemon(name, mnt string, argv ...string) Subject {
	return Subject{Name: name, Start: func(ctx context.Context) (string, func() error, error) {
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return "", nil, err
		}
		logPath := filepath.Join(os.TempDir(), "fastfs-bench-"+name+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			return "", nil, err
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return "", nil, fmt.Errorf("start %s: %w", argv[0], err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logf.Close() }()
		stop := func() error {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			if isFUSE(mnt) {
				unix.Unmount(mnt, unix.MNT_DETACH)
				return fmt.Errorf("%s left %s mounted; detached it", name, mnt)
			}
			return nil
		}
		deadline := time.After(20 * time.Second)
		for !isFUSE(mnt) {
			select {
			case err := <-exited:
				log, _ := os.ReadFile(logPath)
				return "", nil, fmt.Errorf("%s exited before mounting (%v): %s", name, err, log)
			case <-deadline:
				stop()
				return "", nil, errors.New(name + ": not mounted after 20 s; see " + logPath)
			case <-time.After(20 * time.Millisecond):
			}
		}
		return mnt, stop, nil
	}}
}

func isFUSE(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == fuseSuperMagic
}
