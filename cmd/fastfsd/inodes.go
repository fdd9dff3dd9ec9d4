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

// maxOpenHelp is --max-open-per-uid's help (mount and 9p; virtiofs has
// its own text).
var maxOpenHelp = fmt.Sprintf("how many files and directories one uid may hold open, lock owners it may hold locks with and POSIX (fcntl) locks it may wait for, at once (a blocking flock holds no fd of its own and is not counted); past it that uid's open fails with EMFILE (a lock with ENOLCK) and nobody else notices; uid 0 is not counted. 0 = automatic: the fd limit (RLIMIT_NOFILE) less the inode fd cache and %d fds for the daemon, divided by %d times the fds one open file may hold (itself; its inode's fd while outside the cache, with file handles; its passthrough file, with --passthrough), so that it takes %d users holding all they may to use up the fds while root and the others keep room (614 for a root mount with a 20,000-fd limit; logged at start); one budget for all the directories served (--source, --shared-dir); -1 = no limit", passthrough.BudgetReserve, passthrough.BudgetShare, passthrough.BudgetShare)

// inodeFlags are --inode-file-handles, --inode-fd-cache and
// --max-open-per-uid.
type inodeFlags struct {
	mode    string
	fdCache int
	maxOpen int
}

func addInodeFlags(fl *flag.FlagSet) *inodeFlags {
	f := &inodeFlags{}
	fl.StringVar(&f.mode, "inode-file-handles", "prefer", fileHandlesHelp)
	fl.IntVar(&f.fdCache, "inode-fd-cache", 0, fdCacheHelp)
	fl.IntVar(&f.maxOpen, "max-open-per-uid", 0, maxOpenHelp)
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
	if _, err := parseMaxOpen(strconv.Itoa(f.maxOpen)); err != nil {
		return err
	}
	o.FileHandles, o.FdCache = m, n
	return nil
}

// openBudget sets in o the budget --max-open-per-uid asks for, one for
// the shares backends built with o, and returns the note for the
// start-up log. Call it in the process that serves (its RLIMIT_NOFILE
// sizes the automatic budget).
func openBudget(o *passthrough.Options, maxOpen, shares int) string {
	switch {
	case maxOpen < 0:
		o.OpenBudget, o.MaxOpenPerUid = nil, -1
		return "no limit on the files one uid may hold open (--max-open-per-uid=-1)"
	case maxOpen == 0:
		maxOpen = o.AutoOpenBudget(shares)
	}
	o.OpenBudget, o.MaxOpenPerUid = passthrough.NewOpenBudget(maxOpen), 0
	return fmt.Sprintf("at most %d open files, directories, lock owners and POSIX lock waits per uid, uid 0 exempt (--max-open-per-uid)", maxOpen)
}

// parseMaxOpen parses --max-open-per-uid's value (apply, and virtiofs's
// own parser).
func parseMaxOpen(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 || n > 1<<30 {
		return 0, fmt.Errorf("--max-open-per-uid %q: want 0 (automatic), -1 (no limit) or a number of open files", v)
	}
	return n, nil
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
