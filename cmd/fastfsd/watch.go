package main

import (
	"fmt"
	"strings"

	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// newWatchers makes --watch's watchers for specs: one per filesystem
// holding a share, not one per share. A watcher marks its directory's
// whole filesystem (FAN_MARK_FILESYSTEM), so a second watcher for another
// share on that filesystem would read and decode every one of its events
// again (on a busy filesystem, about half a core for two shares). Shares
// whose directory has the device and fsid of a watcher's
// (Watcher.SameFilesystem) share it: watchOf[i] is the index in ws of
// specs[i]'s watcher. Shares on different filesystems get watchers of
// their own. On error the watchers made are closed.
func newWatchers(specs []shareSpec, logf func(string, ...any)) (ws []*passthrough.Watcher, watchOf []int, err error) {
	defer func() {
		if err != nil {
			for _, w := range ws {
				w.Close()
			}
			ws, watchOf = nil, nil
		}
	}()
	names := map[int][]string{} // a watcher's shares, for the log
	for _, sp := range specs {
		wi := -1
		for i, w := range ws {
			same, err := w.SameFilesystem(sp.dir)
			if err != nil {
				return ws, nil, fmt.Errorf("--watch: %w", err)
			}
			if same {
				wi = i
				break
			}
		}
		if wi < 0 {
			w, err := passthrough.NewWatcher(sp.dir)
			if err != nil {
				return ws, nil, fmt.Errorf("--watch: %w", err)
			}
			wi, ws = len(ws), append(ws, w)
		}
		watchOf = append(watchOf, wi)
		names[wi] = append(names[wi], sp.dir)
	}
	for i := range ws {
		if len(names[i]) > 1 {
			logf("mount: --watch: %s are on one filesystem: one fanotify group reads its events once for all of them", strings.Join(names[i], ", "))
		}
	}
	return ws, watchOf, nil
}
