package passthrough

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// Proving that a directory is beneath the root (a ".." lookup, and every
// directory reopened from its file handle) means finding the root among
// its ancestors. Climbing one ".." per system call costs four calls a
// level, so a client that made a chain of directories thousands deep and
// had the fd cache drop them made every reopen cost tens of thousands of
// calls (about 150 ms at depth 4,000): a cheap request the daemon paid for
// a thousand times over. beneathRoot climbs the first levels one at a
// time, as most directories are shallow, and past them measures instead:
// a directory has one parent, so if the root is an ancestor of cur it is
// the one as many levels above cur as cur is deeper than the root, depths
// counted to the top of the tree (the first ancestor that is its own
// parent). Depths are found with one openat of up to dotdotStride ".."
// components at a time, so a directory d levels deep costs about
// linearDepth + d/dotdotStride + log2(dotdotStride) system calls, and the
// kernel climbs each level at most three times.

const (
	// linearDepth is how many levels beneathRoot climbs one at a time,
	// comparing each with the root, before it measures depths.
	linearDepth = 16
	// dotdotStride is how many ".." one openat climbs: "../" times 1024
	// is 3 KiB, within PATH_MAX.
	dotdotStride = 1024
	// maxDepth bounds the depths measured: a directory further than this
	// from the top is refused (EACCES).
	maxDepth = 1 << 16
)

// dotdots is "../" repeated dotdotStride times; dotdotPath slices it.
var dotdots = strings.Repeat("../", dotdotStride)

// dotdotPath is the relative path k levels up, 1 ≤ k ≤ dotdotStride.
func dotdotPath(k int) string { return dotdots[:3*k-1] }

// openUp opens the directory k levels above the directory fd (k ≥ 0),
// O_PATH, climbing at most dotdotStride levels per openat.
func openUp(fd, k int) (int, error) {
	cur, err := unix.Dup(fd)
	if err != nil {
		return -1, err
	}
	for k > 0 {
		n := min(k, dotdotStride)
		up, err := unix.Openat(cur, dotdotPath(n), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur, k = up, k-n
	}
	return cur, nil
}

// openUpKey is openUp that also returns the key of the directory it
// opened.
func openUpKey(fd, k int) (int, inodeKey, error) {
	up, err := openUp(fd, k)
	if err != nil {
		return -1, inodeKey{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(up, &st); err != nil {
		unix.Close(up)
		return -1, inodeKey{}, err
	}
	return up, keyOf(&st), nil
}

// keyUp returns the key of the directory k levels above the directory fd.
func keyUp(fd, k int) (inodeKey, error) {
	up, key, err := openUpKey(fd, k)
	if err != nil {
		return inodeKey{}, err
	}
	unix.Close(up)
	return key, nil
}

// topDistance returns how many levels above the directory fd the top of
// its tree is: "/" of the daemon's root, or, for a directory the host
// moved out of a bind mount's subtree, where the kernel stops its "..".
// ".." of the top is the top, so the keys k levels up are the top's for
// every k from that distance on. The climb goes one level at a time for
// linear levels, then a stride at a time until a stride ends on a
// directory that is its own parent, then finds the top within that
// stride by halving steps from its last known non-top directory (each
// level climbed once more at most). It also returns the top's key; with
// exact false it returns as soon as it knows the key, with the distance
// -1. An error of a ".." (ENOENT where the kernel finds the path
// disconnected) is returned.
func topDistance(fd, linear int, exact bool) (int, inodeKey, error) {
	cur, err := unix.Dup(fd) // d levels above fd
	if err != nil {
		return 0, inodeKey{}, err
	}
	defer func() { unix.Close(cur) }()
	var st, ust unix.Stat_t
	if err := unix.Fstat(cur, &st); err != nil {
		return 0, inodeKey{}, err
	}
	d := 0
	for ; ; d++ {
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, inodeKey{}, err
		}
		if err := unix.Fstat(up, &ust); err != nil {
			unix.Close(up)
			return 0, inodeKey{}, err
		}
		if keyOf(&ust) == keyOf(&st) {
			unix.Close(up)
			return d, keyOf(&st), nil
		}
		if d == linear {
			unix.Close(up)
			break
		}
		unix.Close(cur)
		cur, st = up, ust
	}
	// cur, d levels up, is not the top.
	for ; d < maxDepth; d += dotdotStride {
		far, top, err := openUpKey(cur, dotdotStride)
		if err != nil {
			return 0, inodeKey{}, err
		}
		above, err := keyUp(far, 1)
		if err != nil {
			unix.Close(far)
			return 0, inodeKey{}, err
		}
		if above != top {
			unix.Close(cur)
			cur = far
			continue
		}
		unix.Close(far)
		if !exact {
			return -1, top, nil
		}
		// The top is within (d, d+stride]: advance cur by halving steps
		// while it stays below the top; it ends one level below it.
		for step := dotdotStride / 2; step >= 1; step /= 2 {
			cand, k, err := openUpKey(cur, step)
			if err != nil {
				return 0, inodeKey{}, err
			}
			if k == top {
				unix.Close(cand)
				continue
			}
			unix.Close(cur)
			cur, d = cand, d+step
		}
		return d + 1, top, nil
	}
	return 0, inodeKey{}, syscall.EACCES
}

// statMount returns, with one statx, the key of fd's inode, the mount ID
// of fd's mount and whether fd is that mount's root directory (0 and
// false if the kernel does not say: STATX_MNT_ID and
// STATX_ATTR_MOUNT_ROOT are Linux 5.8). The key is keyOf of fd's fstat:
// stx_dev_major and stx_dev_minor are always filled, and Mkdev encodes
// them as st_dev.
func statMount(fd int) (key inodeKey, mnt uint64, mntRoot bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil {
		return inodeKey{}, 0, false, err
	}
	key = inodeKey{dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), ino: stx.Ino}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return key, 0, false, nil
	}
	return key, stx.Mnt_id, stx.Attributes_mask&stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// beneathMountRoot is beneathRoot for a directory fd other than the root,
// on the root's mount, when the root is that mount's root directory: the
// kernel checks every ".." it climbs on a mount that is the bind of a
// subtree against the mount's root (path_connected, fs/namei.c), failing
// it with ENOENT when the parent is not the mount's root or beneath it, so
// a single ".." answers: the parent is beneath the root, hence fd is, or
// fd was moved outside (EACCES). On a mount of a whole filesystem the
// kernel does not check, and needs not: every directory of that
// filesystem is beneath its root. One lookup, whatever the depth (the
// kernel's check walks the parents once, O(depth) in memory): climbing
// there cost the kernel that check at every level, about 100 ms a reopen
// at depth 4,000, which let one user's lookups stall a whole mount.
func beneathMountRoot(fd int) fs.Errno {
	up, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == syscall.ENOENT {
		return syscall.EACCES
	}
	if err != nil {
		return errno(err)
	}
	unix.Close(up)
	return fs.OK
}

// beneathRoot reports OK if the directory fd is the root or below it, and
// EACCES if the root is not among its ancestors (a directory the host
// moved out of the share). The answer holds for the tree as it was while
// beneathRoot looked, as with any check of the host's tree: a key compared
// equal to the root's is always one of fd's ancestors at that moment. A
// tree the host changes meanwhile can only make the deep case miss the
// root (EACCES), never find it where it is not.
func (f *FS) beneathRoot(fd int) fs.Errno {
	key, mnt, _, err := statMount(fd)
	if err != nil {
		return errno(err)
	}
	if key == f.root.key {
		return fs.OK
	}
	if f.rootMnt != 0 && mnt == f.rootMnt {
		return beneathMountRoot(fd)
	}
	// The climb: cur starts as a dup of fd (key is its inode's) and goes
	// up a level at a time.
	cur, err := unix.Dup(fd)
	if err != nil {
		return errno(err)
	}
	defer func() { unix.Close(cur) }()
	for range linearDepth {
		if key == f.root.key {
			return fs.OK
		}
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return errno(err)
		}
		var ust unix.Stat_t
		if err := unix.Fstat(up, &ust); err != nil {
			unix.Close(up)
			return errno(err)
		}
		unix.Close(cur)
		cur = up
		if keyOf(&ust) == key { // reached the top without meeting the root
			return syscall.EACCES
		}
		key = keyOf(&ust)
	}
	if key == f.root.key {
		return fs.OK
	}
	// Deep: cur, linearDepth levels up, is not the root. It may be the
	// top (the loop knows only that the level below it is not): then
	// topDistance finds cur's distance 0, and EACCES follows below.
	dr, _, err := topDistance(f.root.fd, linearDepth, true)
	if err != nil {
		return errno(err)
	}
	if dr == 0 {
		// The root is the top of its tree (the namespace and chroot
		// sandboxes): cur is beneath it if cur's top is the root. Here
		// every ".." is the kernel's O(depth) path_connected check of a
		// bind mount of a subtree, so climbing fewer levels matters.
		_, top, err := topDistance(cur, 0, false)
		if err != nil {
			return errno(err)
		}
		if top != f.root.key {
			return syscall.EACCES
		}
		return fs.OK
	}
	// If the root is above cur, it is dc-dr levels above.
	dc, _, err := topDistance(cur, 0, true)
	if err != nil {
		return errno(err)
	}
	if dc <= dr {
		return syscall.EACCES
	}
	k, err := keyUp(cur, dc-dr)
	if err != nil {
		return errno(err)
	}
	if k != f.root.key {
		return syscall.EACCES
	}
	return fs.OK
}
