package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// flagsGuestScript checks, in the guest, what --translate-uid/--uid-map,
// the xattr maps and --readonly look like from the client; the host side
// of each is checked by TestGuestVirtiofsdFlags after the run.
const flagsGuestScript = `
res() { echo "FASTFS-RESULT name=$1 status=$2 detail=$(echo "$3" | tr '\n' ' ')"; }
expect() { # name want got
	if [ "$2" = "$3" ]; then res "$1" PASS "$3"; else res "$1" FAIL "want [$2] got [$3]"; fi
}
# refused name cmd...: the command must fail with EROFS.
refused() {
	n=$1; shift
	if out=$("$@" 2>&1); then res "ro:$n" FAIL "succeeded: $out"
	elif echo "$out" | grep -q "Read-only file system"; then res "ro:$n" PASS "$out"
	else res "ro:$n" FAIL "wrong error: $out"; fi
}

# --- uid/gid translation: host 100000+N / 200000+N are guest N.
I=/mnt/idmap
expect idmap:host-owned 1234:4321 "$(stat -c %u:%g $I/hostowned)"
touch $I/rootmade
expect idmap:created 0:0 "$(stat -c %u:%g $I/rootmade)"
mkdir $I/rootdir
expect idmap:mkdir 0:0 "$(stat -c %u:%g $I/rootdir)"
touch $I/chowned && chown 77:88 $I/chowned
expect idmap:chown 77:88 "$(stat -c %u:%g $I/chowned)"
if out=$(chown 5000 $I/rootmade 2>&1); then res idmap:forbidden FAIL "chown to forbidden uid 5000 succeeded"
else res idmap:forbidden PASS "$out"; fi
expect idmap:ls "0 0" "$(ls -ln $I/rootmade | awk '{print $3, $4}')"

# --- default xattr map: security.* and trusted.* stored as user.virtiofs.*
X=/mnt/xdef
touch $X/f
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 $X/f &&
setfattr -n security.selinux -v guest_label $X/f &&
setfattr -n trusted.overlay.opaque -v y $X/f &&
setfattr -n user.plain -v p $X/f && res xattr:set PASS "" || res xattr:set FAIL "setfattr failed"
expect xattr:get-selinux guest_label "$(getfattr --only-values -n security.selinux $X/f 2>/dev/null)"
expect xattr:get-trusted y "$(getfattr --only-values -n trusted.overlay.opaque $X/f 2>/dev/null)"
expect xattr:get-cap 0x0100000200200000000000000000000000000000 "$(getfattr -e hex -n security.capability $X/f 2>/dev/null | sed -n 's/^security.capability=//p')"
expect xattr:list "security.capability security.selinux trusted.overlay.opaque user.plain" \
	"$(getfattr -d -m - $X/f 2>/dev/null | sed -n 's/=.*//p' | grep -v '^#' | sort | tr '\n' ' ' | sed 's/ $//')"
expect xattr:host-hidden "" "$(getfattr -d -m - $X/hostfile 2>/dev/null | grep -v '^#' | sed -n 's/=.*//p' | tr '\n' ' ' | sed 's/ $//')"
if out=$(setfattr -n user.virtiofs.security.capability -v 0x01 $X/f 2>&1); then res xattr:forge FAIL "set user.virtiofs.* succeeded"
else res xattr:forge PASS "$out"; fi

# --- explicit --xattrmap: every name under user.virtiofs.
M=/mnt/xmap
touch $M/f && setfattr -n user.foo -v bar $M/f && res xattrmap:set PASS "" || res xattrmap:set FAIL "setfattr user.foo"
expect xattrmap:get bar "$(getfattr --only-values -n user.foo $M/f 2>/dev/null)"

# --- --posix-acl: the guest enforces an ACL granting uid 1000 read on a
# 0600 root file; without the flag (xdef) the same ACL is stored but the
# guest ignores it, as FUSE does without POSIX_ACL.
grep -q '^u:' /etc/passwd 2>/dev/null || echo 'u:x:1000:1000::/:/bin/sh' >> /etc/passwd
ACL=0x0200000001000600ffffffff02000400e803000004000000ffffffff10000400ffffffff20000000ffffffff
for d in /mnt/acl /mnt/xdef; do
	echo secret > $d/aclf && chmod 600 $d/aclf && setfattr -n system.posix_acl_access -v $ACL $d/aclf ||
		res "acl:set:$d" FAIL "setfattr system.posix_acl_access failed"
done
expect acl:granted secret "$(su u -c "cat /mnt/acl/aclf" 2>&1)"
if out=$(su u -c "cat /mnt/xdef/aclf" 2>&1); then res acl:ignored-without-flag FAIL "read as uid 1000 without --posix-acl: $out"
else res acl:ignored-without-flag PASS "$out"; fi

# --- --readonly: reads work, every change is EROFS.
R=/mnt/ro
expect ro:read orig "$(cat $R/existing)"
refused create sh -c "echo x > $R/new"
refused append sh -c "echo x >> $R/existing"
refused truncate sh -c ": > $R/existing"
refused mkdir mkdir $R/d
refused unlink rm -f $R/existing
refused rename mv $R/existing $R/moved
refused link ln $R/existing $R/hard
refused symlink ln -s existing $R/sym
refused chmod chmod 600 $R/existing
refused chown chown 1:1 $R/existing
refused utimes touch $R/existing
refused setxattr setfattr -n user.x -v 1 $R/existing
`

// TestGuestVirtiofsdFlags boots one guest with five fastfsd devices —
// uid/gid translation (--uid-map and --translate-uid/gid forms), the
// default xattr map, an explicit --xattrmap, --readonly and --posix-acl —
// and checks each from the guest and on the host.
func TestGuestVirtiofsdFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	bin := buildFastfsd(t)

	idDir, xDir, mDir, roDir, aclDir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{idDir, xDir, mDir, roDir, aclDir} {
		os.Chmod(d, 0o777)
	}
	// Guest root is host 100000 (uids) / 200000 (gids): the directory the
	// guest creates in must belong to the guest's root to be writable with
	// default_permissions as any guest user expects.
	if err := os.Chown(idDir, 100000, 200000); err != nil {
		t.Fatal(err)
	}
	hostOwned := filepath.Join(idDir, "hostowned")
	if err := os.WriteFile(hostOwned, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(hostOwned, 101234, 204321); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(xDir, "hostfile")
	if err := os.WriteFile(hostFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The host's own trusted.* attribute must stay invisible to the guest.
	if err := unix.Setxattr(hostFile, "trusted.hostsecret", []byte("s"), 0); err != nil {
		t.Fatalf("setxattr trusted.hostsecret on the host: %v", err)
	}
	if err := os.WriteFile(filepath.Join(roDir, "existing"), []byte("orig"), 0o666); err != nil {
		t.Fatal(err)
	}

	be := func(extra ...string) *Backend { b := Fastfsd(bin, extra...); return &b }
	res := RunT(t, Config{
		Kernel: k,
		Shares: []Share{
			{Tag: "idmap", Dir: idDir, GuestPath: "/mnt/idmap", Backend: be(
				"--uid-map=:0:100000:5000:", "--translate-uid", "forbid-guest:5000:1",
				"--translate-gid", "map:0:200000:65536")},
			{Tag: "xdef", Dir: xDir, GuestPath: "/mnt/xdef", Backend: be()},
			{Tag: "xmap", Dir: mDir, GuestPath: "/mnt/xmap", Backend: be("--xattrmap", ":map::user.virtiofs.:")},
			{Tag: "ro", Dir: roDir, GuestPath: "/mnt/ro", Backend: be("--readonly")},
			{Tag: "acl", Dir: aclDir, GuestPath: "/mnt/acl", Backend: be("--posix-acl")},
		},
		Script:  flagsGuestScript,
		Timeout: 4 * time.Minute,
	})
	if len(res.Results) < 28 {
		t.Errorf("only %d results: the guest script did not run through", len(res.Results))
	}

	// Host side of the uid/gid translation.
	owner := func(name string) (uint32, uint32) {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(idDir, name), &st); err != nil {
			t.Errorf("host stat %s: %v", name, err)
		}
		return st.Uid, st.Gid
	}
	for name, want := range map[string][2]uint32{
		"rootmade": {100000, 200000}, "rootdir": {100000, 200000}, "chowned": {100077, 200088},
	} {
		if u, g := owner(name); u != want[0] || g != want[1] {
			t.Errorf("host owner of %s = %d:%d, want %d:%d", name, u, g, want[0], want[1])
		}
	}

	// Host side of the default xattr map: stored under mapped names only.
	f := filepath.Join(xDir, "f")
	for name, want := range map[string]string{
		"user.virtiofs.security.selinux":       "guest_label",
		"user.virtiofs.trusted.overlay.opaque": "y",
		"user.virtiofs.security.capability":    "\x01\x00\x00\x02\x00\x20\x00\x00" + strings.Repeat("\x00", 12),
		"user.plain":                           "p",
	} {
		if got := getxattr(t, f, name); got != want {
			t.Errorf("host %s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"security.capability", "trusted.overlay.opaque"} {
		if _, err := unix.Getxattr(f, name, make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("host %s: %v, want ENODATA (the guest must not set it)", name, err)
		}
	}
	if v := getxattr(t, hostFile, "trusted.hostsecret"); v != "s" {
		t.Errorf("host trusted.hostsecret = %q: changed by the guest", v)
	}
	if v := getxattr(t, filepath.Join(mDir, "f"), "user.virtiofs.user.foo"); v != "bar" {
		t.Errorf("--xattrmap :map::user.virtiofs.: stored user.foo as %q, want user.virtiofs.user.foo=bar", v)
	}

	// Host side of --readonly: nothing changed.
	if b, err := os.ReadFile(filepath.Join(roDir, "existing")); err != nil || string(b) != "orig" {
		t.Errorf("--readonly: existing = %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(roDir); len(ents) != 1 {
		t.Errorf("--readonly: the guest changed the directory: %v", ents)
	}
}

func getxattr(t *testing.T, path, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(buf[:n])
}
