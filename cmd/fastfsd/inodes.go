package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// Flags shared by every door: how the passthrough filesystem holds the
// inodes a client knows (virtiofsd's --inode-file-handles).

const fileHandlesHelp = "how inodes are held: prefer (file handles, with O_PATH fds only in a bounded cache: open fds do not grow with the inodes the client remembers; needs CAP_DAC_READ_SEARCH, falls back to never without it), mandatory (prefer without fallback: fail if handles do not work), never (one open O_PATH fd per inode the client remembers, bounded by RLIMIT_NOFILE)"

var fdCacheHelp = fmt.Sprintf("with file handles, how many unused inode fds stay open; 0 = a quarter of RLIMIT_NOFILE, at most %d (a LOOKUP needs only its parent directory's fd and a GETATTR its own, so this holds the directories being walked and the files being worked on; a miss costs one open_by_handle_at, and three quarters of the fd limit stay for open files, locks, pipes and sockets)", passthrough.MaxFdCache)

// inodeFlags are --inode-file-handles and --inode-fd-cache.
type inodeFlags struct {
	mode    string
	fdCache int
}

func addInodeFlags(fl *flag.FlagSet) *inodeFlags {
	f := &inodeFlags{}
	fl.StringVar(&f.mode, "inode-file-handles", "prefer", fileHandlesHelp)
	fl.IntVar(&f.fdCache, "inode-fd-cache", 0, fdCacheHelp)
	return f
}

// apply checks the flags and sets them in o.
func (f *inodeFlags) apply(o *passthrough.Options) error {
	m, err := parseFileHandles(f.mode)
	if err != nil {
		return err
	}
	n, err := parseFdCache(strconv.Itoa(f.fdCache))
	if err != nil {
		return err
	}
	o.FileHandles, o.FdCache = m, n
	return nil
}

// parseFileHandles parses --inode-file-handles's value (apply, and
// virtiofs's own parser).
func parseFileHandles(v string) (passthrough.FileHandleMode, error) {
	m, err := passthrough.ParseFileHandleMode(v)
	if err != nil {
		return m, fmt.Errorf("--inode-file-handles %q: want never, prefer or mandatory", v)
	}
	return m, nil
}

// parseFdCache parses --inode-fd-cache's value (apply, and virtiofs's own
// parser).
func parseFdCache(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n != 0 && (n < passthrough.MinFdCache || n > 1<<20) {
		return 0, fmt.Errorf("--inode-fd-cache %q: want 0 (automatic) or %d to %d", v, passthrough.MinFdCache, 1<<20)
	}
	return n, nil
}

// fileHandlesNote says how inodes ended up held, for the start-up log:
// "" when as asked.
func fileHandlesNote(fsys *passthrough.FS, asked passthrough.FileHandleMode) string {
	on, size, fallback := fsys.FileHandles()
	switch {
	case on:
		return fmt.Sprintf("inodes held as file handles, %d inode fds cached", size)
	case fallback != nil:
		return fmt.Sprintf("--inode-file-handles=%v: %v; holding one O_PATH fd per inode (never)", asked, fallback)
	}
	return ""
}
