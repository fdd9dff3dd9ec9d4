package fuse

import (
	"bytes"
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// secctxExt is a security-context extension as the kernel builds it
// (fs/fuse/dir.c get_security_context): struct fuse_secctx_header {size,
// nr_secctx}, then per context struct fuse_secctx {size, padding}, the
// NUL-terminated name and the context, padded to 8 bytes.
func secctxExt(ctxs ...[2]string) []byte {
	b := make([]byte, abi.SecctxHeaderSize)
	for _, c := range ctxs {
		rec := make([]byte, abi.SecctxSize)
		binary.NativeEndian.PutUint32(rec, uint32(len(c[1])))
		rec = append(append(append(rec, c[0]...), 0), c[1]...)
		for len(rec)%8 != 0 {
			rec = append(rec, 0)
		}
		b = append(b, rec...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint32(b[4:], uint32(len(ctxs)))
	return b
}

// selinux is a label as SELinux sends it (with its NUL).
var selinux = [2]string{"security.selinux", "system_u:object_r:container_file_t:s0\x00"}

// labelledRequests are the creating requests the kernel labels.
func labelledRequests() map[string][]byte {
	return map[string][]byte{
		"mkdir":   mkReq(abi.OpMkdir, 10, 1, enc(&abi.MkdirIn{Mode: 0o755, Umask: 0o22}, abi.MkdirInSize), cstr("d")),
		"mknod":   mkReq(abi.OpMknod, 10, 1, enc(&abi.MknodIn{Mode: syscall.S_IFIFO | 0o600}, abi.MknodInSize), cstr("p")),
		"symlink": mkReq(abi.OpSymlink, 10, 1, cstr("l"), cstr("target")),
		"create":  mkReq(abi.OpCreate, 10, 1, enc(&abi.CreateIn{Flags: syscall.O_WRONLY, Mode: 0o644}, abi.CreateInSize), cstr("f")),
		"tmpfile": mkReq(abi.OpTmpfile, 10, 1, enc(&abi.CreateIn{Flags: syscall.O_RDWR, Mode: 0o600}, abi.CreateInSize), cstr("/")),
	}
}

// TestSecurityLabel: with Options.SecurityLabel the engine asks for
// SECURITY_CTX and hands each creating request's label to the
// filesystem (fs.Context.SecLabelName, SecLabel), alongside the
// supplementary group; a header with no context gives no label.
func TestSecurityLabel(t *testing.T) {
	h := newHarness(t, Options{SecurityLabel: true})
	if h.ag.Flags&abi.InitSecurityCtx == 0 {
		t.Fatalf("INIT did not agree on SECURITY_CTX: %v", h.ag.Flags)
	}
	for op, req := range labelledRequests() {
		for name, ext := range map[string][]byte{
			"label":            secctxExt(selinux),
			"label and groups": append(secctxExt(selinux), suppGroupExt(3000)...),
			"groups and label": append(suppGroupExt(3000), secctxExt(selinux)...),
		} {
			h.fs.reset()
			h.ok(withExt(req, ext))
			c := h.fs.last()
			if c.op != op || string(c.ctx.SecLabelName) != selinux[0] || string(c.ctx.SecLabel) != selinux[1] {
				t.Errorf("%s with %s: fs saw %s label %q=%q", op, name, c.op, c.ctx.SecLabelName, c.ctx.SecLabel)
			}
			if bytes.Contains([]byte(name), []byte("groups")) && (!c.ctx.HasSuppGid || c.ctx.SuppGid != 3000) {
				t.Errorf("%s with %s: fs saw no supplementary group", op, name)
			}
		}
		h.fs.reset()
		h.ok(withExt(req, secctxExt()))
		if c := h.fs.last(); c.op != op || c.ctx.SecLabelName != nil || c.ctx.SecLabel != nil {
			t.Errorf("%s with an empty security context header: fs saw %s label %q=%q", op, c.op, c.ctx.SecLabelName, c.ctx.SecLabel)
		}
		h.fs.reset()
		h.ok(req)
		if c := h.fs.last(); c.ctx.SecLabelName != nil {
			t.Errorf("%s without extensions: fs saw label %q", op, c.ctx.SecLabelName)
		}
	}
	// LINK is never labelled (the kernel sends none): a block is skipped.
	h.fs.reset()
	h.ok(withExt(mkReq(abi.OpLink, 10, 1, enc(&abi.LinkIn{OldNodeID: 5}, abi.LinkInSize), cstr("hard")), secctxExt(selinux)))
	if c := h.fs.last(); c.op != "link" || c.ctx.SecLabelName != nil {
		t.Errorf("LINK with a security context: fs saw %s label %q", c.op, c.ctx.SecLabelName)
	}
}

// TestSecurityLabelMalformed: every security context the kernel would
// not send fails the request with EINVAL before the filesystem is called.
func TestSecurityLabelMalformed(t *testing.T) {
	h := newHarness(t, Options{SecurityLabel: true})
	mk := mkReq(abi.OpMkdir, 10, 1, enc(&abi.MkdirIn{Mode: 0o755}, abi.MkdirInSize), cstr("d"))
	set := func(b []byte, off int, v uint32) []byte {
		binary.NativeEndian.PutUint32(b[off:], v)
		return b
	}
	big := string(make([]byte, 1<<16+1))
	for name, ext := range map[string][]byte{
		"two contexts":          secctxExt(selinux, [2]string{"security.SMACK64", "_"}),
		"two blocks":            append(secctxExt(selinux), secctxExt(selinux)...),
		"name not security.*":   secctxExt([2]string{"user.selinux", "x"}),
		"trusted name":          secctxExt([2]string{"trusted.overlay.opaque", "y"}),
		"security.capability":   secctxExt([2]string{"security.capability", "\x01\x00\x00\x02"}),
		"bare security.":        secctxExt([2]string{"security.", "x"}),
		"empty name":            secctxExt([2]string{"", "x"}),
		"empty context":         secctxExt([2]string{"security.selinux", ""}),
		"name too long":         secctxExt([2]string{"security." + string(bytes.Repeat([]byte("a"), 250)), "x"}),
		"context too long":      secctxExt([2]string{"security.selinux", big}),
		"context beyond block":  set(secctxExt(selinux), 8, 4096),
		"no NUL after the name": set(secctxExt([2]string{"security.selinuxx", "abcdefg"}), 8, 0),
		"nr 1 without a record": func() []byte { b := make([]byte, 8); set(b, 0, 8); return set(b, 4, 1) }(),
		"record, nr 0":          set(secctxExt(selinux), 4, 0),
		"padding beyond 8": func() []byte {
			b := append(secctxExt(selinux), make([]byte, 8)...)
			return set(b, 0, uint32(len(b)))
		}(),
	} {
		h.fs.reset()
		h.fails(withExt(mk, ext), syscall.EINVAL)
		if c := h.fs.last(); c.op != "" {
			t.Errorf("%s: the filesystem was called (%s)", name, c.op)
		}
	}
}

// TestSecurityLabelNotAgreed: without Options.SecurityLabel the engine
// does not ask for SECURITY_CTX, and a context a client sends anyway (a
// hostile front-end) is skipped, never given to the filesystem.
func TestSecurityLabelNotAgreed(t *testing.T) {
	h := newHarness(t, Options{})
	if h.ag.Flags&abi.InitSecurityCtx != 0 {
		t.Fatalf("INIT agreed on SECURITY_CTX unasked: %v", h.ag.Flags)
	}
	for op, req := range labelledRequests() {
		h.fs.reset()
		h.ok(withExt(req, secctxExt(selinux)))
		if c := h.fs.last(); c.op != op || c.ctx.SecLabelName != nil || c.ctx.SecLabel != nil {
			t.Errorf("%s: fs saw %s label %q", op, c.op, c.ctx.SecLabelName)
		}
	}
}

// TestSecurityLabelInitRefused: asked for security labels, INIT fails
// with EPROTO when the kernel does not offer SECURITY_CTX, or offers it
// in the layout before 7.38 (no extension header), and nothing is agreed.
func TestSecurityLabelInitRefused(t *testing.T) {
	for name, req := range map[string][]byte{
		"not offered": initReq(45, allKernelFlags&^abi.InitSecurityCtx),
		"7.37":        initReq(37, allKernelFlags),
	} {
		s := NewServer(newFakeFS(), Options{SecurityLabel: true})
		r := s.NewRequest()
		r.In = req
		n := s.Handle(r)
		if oh := outHdr(t, r.Out, n); oh.Error != -int32(syscall.EPROTO) {
			t.Errorf("%s: INIT answered %d, want -EPROTO", name, oh.Error)
		}
		if _, ok := s.Agreed(); ok {
			t.Errorf("%s: INIT agreed", name)
		}
	}
}

// FuzzExtensions decodes arbitrary request extensions, security contexts
// included. Invariants: no panic; a label given to the filesystem is a
// security.* name and a 1 to 64 KiB context, both inside the input.
func FuzzExtensions(f *testing.F) {
	f.Add(secctxExt(selinux))
	f.Add(append(secctxExt(selinux), suppGroupExt(3000)...))
	f.Add(secctxExt())
	f.Add(secctxExt(selinux, selinux))
	f.Add(suppGroupExt(1, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ctx fs.Context
		e := parseExtensions(&ctx, b, true)
		if e != 0 || ctx.SecLabelName == nil {
			return
		}
		n, v := ctx.SecLabelName, ctx.SecLabel
		if !bytes.HasPrefix(n, []byte("security.")) || len(n) > xattrNameMax || len(v) == 0 || len(v) > xattrSizeMax {
			t.Fatalf("label %q = %d bytes", n, len(v))
		}
		if !within(b, n) || !within(b, v) {
			t.Fatal("label outside the input")
		}
	})
}

// within reports whether s is a sub-slice of b.
func within(b, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := range b {
		if &b[i] == &s[0] {
			return i+len(s) <= len(b)
		}
	}
	return false
}
