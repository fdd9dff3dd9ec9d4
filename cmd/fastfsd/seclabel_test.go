package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// labelExt is the security-context request extension a kernel with
// SELinux sends (fs/fuse/dir.c get_security_context): struct
// fuse_secctx_header {size, nr_secctx 1}, struct fuse_secctx {size of
// the context, padding}, the NUL-terminated xattr name, the context,
// padded to 8 bytes.
func labelExt(name, label string) []byte {
	b := make([]byte, abi.SecctxHeaderSize+abi.SecctxSize)
	b = append(append(append(b, name...), 0), label...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint32(b[4:], 1)
	binary.NativeEndian.PutUint32(b[8:], uint32(len(label)))
	return b
}

const testLabel = "system_u:object_r:container_file_t:s0\x00"

// labelRequests sends, with ext, the four named creating requests a
// kernel labels (CREATE, MKDIR, MKNOD of a FIFO, SYMLINK) and returns
// their errnos by name.
func labelRequests(vc *vhostClient, ext []byte) map[string]syscall.Errno {
	cr := make([]byte, abi.CreateInSize)
	(&abi.CreateIn{Flags: unix.O_WRONLY, Mode: unix.S_IFREG | 0o644}).Marshal(cr)
	mkd := make([]byte, abi.MkdirInSize)
	(&abi.MkdirIn{Mode: 0o755}).Marshal(mkd)
	mkn := make([]byte, abi.MknodInSize)
	(&abi.MknodIn{Mode: unix.S_IFIFO | 0o644}).Marshal(mkn)
	return map[string]syscall.Errno{
		"file":    vc.call(abi.OpCreate, abi.RootID, ext, cr, []byte("file\x00")),
		"dir":     vc.call(abi.OpMkdir, abi.RootID, ext, mkd, []byte("dir\x00")),
		"fifo":    vc.call(abi.OpMknod, abi.RootID, ext, mkn, []byte("fifo\x00")),
		"symlink": vc.call(abi.OpSymlink, abi.RootID, ext, []byte("symlink\x00"), []byte("file\x00")),
	}
}

// TestSecurityLabelVirtiofs: a guest kernel's security label reaches the
// host through a virtiofs door run with --security-label (the kernel here
// has no SELinux to send one, so a Go vhost-user front-end sends what an
// SELinux guest's kernel sends): the new file and directory hold it under
// the default map's name, user.virtiofs.security.selinux; a FIFO and a
// symlink, which cannot hold user.* xattrs on the host, are made
// unlabelled. Without the flag the door does not agree on SECURITY_CTX
// and stores nothing. With --xattrmap none the label is the host's own
// security.selinux (what an SELinux host would then enforce). A map that
// refuses the name fails each creation with EPERM and leaves nothing
// behind; a kernel that cannot send labels is refused at INIT.
func TestSecurityLabelVirtiofs(t *testing.T) {
	testutil.RequireRoot(t)
	offer := abi.InitMaxPages | abi.InitExt | abi.InitSecurityCtx
	ext := labelExt("security.selinux", testLabel)

	t.Run("default map", func(t *testing.T) {
		share, vc := startVirtiofsClient(t, offer, "--security-label")
		if vc.agreed&abi.InitSecurityCtx == 0 {
			t.Fatalf("INIT did not agree on SECURITY_CTX: %v", vc.agreed)
		}
		for name, e := range labelRequests(vc, ext) {
			if e != 0 {
				t.Errorf("%s with a label: %v", name, e)
				continue
			}
			got, err := lgetxattr(filepath.Join(share, name), "user.virtiofs.security.selinux")
			switch name {
			case "file", "dir":
				if err != nil || got != testLabel {
					t.Errorf("%s: host user.virtiofs.security.selinux = %q, %v; want %q", name, got, err, testLabel)
				}
			default:
				if err == nil {
					t.Errorf("%s: host has a label %q, yet user.* cannot be kept on it", name, got)
				}
			}
			if got, err := lgetxattr(filepath.Join(share, name), "security.selinux"); err == nil {
				t.Errorf("%s: the guest's label landed in the host's own security.selinux: %q", name, got)
			}
		}
	})
	t.Run("not asked", func(t *testing.T) {
		share, vc := startVirtiofsClient(t, offer)
		if vc.agreed&abi.InitSecurityCtx != 0 {
			t.Fatalf("INIT agreed on SECURITY_CTX without --security-label: %v", vc.agreed)
		}
		for name, e := range labelRequests(vc, ext) {
			if e != 0 {
				t.Errorf("%s: %v", name, e)
			}
			if got, err := lgetxattr(filepath.Join(share, name), "user.virtiofs.security.selinux"); err == nil {
				t.Errorf("%s: a label was stored without --security-label: %q", name, got)
			}
		}
	})
	t.Run("xattrmap none", func(t *testing.T) {
		share, vc := startVirtiofsClient(t, offer, "--security-label", "--xattrmap", "none")
		for name, e := range labelRequests(vc, ext) {
			if e != 0 {
				t.Errorf("%s with a label: %v", name, e)
			}
			if got, err := lgetxattr(filepath.Join(share, name), "security.selinux"); err != nil || got != testLabel {
				t.Errorf("%s: host security.selinux = %q, %v; want %q", name, got, err, testLabel)
			}
		}
	})
	t.Run("xattrmap refuses security", func(t *testing.T) {
		share, vc := startVirtiofsClient(t, offer, "--security-label", "--xattrmap", ":bad:all:security.:: :ok:all:::")
		for name, e := range labelRequests(vc, ext) {
			if e != syscall.EPERM {
				t.Errorf("%s with a label the map refuses: %v, want EPERM", name, e)
			}
			if _, err := os.Lstat(filepath.Join(share, name)); !os.IsNotExist(err) {
				t.Errorf("%s failed, yet the host has it: %v", name, err)
			}
		}
	})
	t.Run("kernel without SECURITY_CTX", func(t *testing.T) {
		_, vc := dialVirtiofs(t, "--security-label")
		if e := vc.init(abi.InitMaxPages | abi.InitExt); e != syscall.EPROTO {
			t.Errorf("INIT without SECURITY_CTX, --security-label: %v, want EPROTO", e)
		}
	})
}

// TestSecurityLabelMount: "fastfsd mount --security-label" agrees on
// SECURITY_CTX with the host kernel (INIT would fail, and the mount with
// it, otherwise) and serves every creating request, whose security
// context header this kernel, with no LSM that labels, sends empty: over
// /dev/fuse and over FUSE io_uring.
func TestSecurityLabelMount(t *testing.T) {
	for _, flags := range [][]string{{"--security-label"}, {"--security-label", "--uring", "--passthrough=false"}} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) { securityLabelMount(t, flags...) })
	}
}

func securityLabelMount(t *testing.T, flags ...string) {
	_, src, mnt := startMount(t, flags...)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(mnt, "p"), unix.S_IFIFO|0o644, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(mnt, "l")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"f", "d", "p", "l"} {
		if _, err := os.Lstat(filepath.Join(src, n)); err != nil {
			t.Errorf("%s made through the mount is not on the host: %v", n, err)
		}
	}
}

// lgetxattr reads name of path without following a symlink.
func lgetxattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
