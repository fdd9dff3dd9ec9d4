package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

func TestParseCacheSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"1G", 1 << 30}, {"1GiB", 1 << 30}, {"512M", 512 << 20}, {"4g", 4 << 30}, {"2097152", 2 << 20},
		{"2048K", 2 << 20}, {"1T", 1 << 40}, {"64MB", 64 << 20},
		{"", 0}, {"0", 0}, {"1M", 0}, {"3M", 0}, {"x", 0}, {"-2M", 0}, {"99999999999T", 0}, {"1.5G", 0},
	} {
		got, err := parseCacheSize(c.in)
		if got != c.want || (err == nil) != (c.want != 0) {
			t.Errorf("parseCacheSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseDAXFlags(t *testing.T) {
	for _, tc := range []struct {
		args  string
		dax   bool
		size  uint64
		warns int
		err   string
	}{
		{args: "--socket-path=/s --shared-dir=/d"},
		{args: "--socket-path=/s --shared-dir=/d --dax", dax: true},
		{args: "--socket-path=/s --shared-dir=/d --dax --cache-size 4G", dax: true, size: 4 << 30},
		{args: "--socket-path=/s -o source=/d,dax --cache-size=512M", dax: true, size: 512 << 20},
		{args: "--socket-path=/s --shared-dir=/d --cache-size 1G", size: 1 << 30, warns: 1},
		{args: "--socket-path=/s --shared-dir=/d --dax --cache-size 3M", err: "multiple of 2M"},
		{args: "--socket-path=/s --shared-dir=/d --dax=yes", err: "takes no value"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			c, warns, err := parseVirtiofsArgs(strings.Fields(tc.args))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.dax != tc.dax || c.cacheSize != tc.size || len(warns) != tc.warns {
				t.Fatalf("dax %v size %d warns %q", c.dax, c.cacheSize, warns)
			}
		})
	}
}

// TestVirtiofsServeDAX: with --dax the daemon offers SHMEM, reports its
// window in GET_SHMEM_CONFIG and maps a file into the VMM's window; with
// neither --dax nor SHMEM nothing of it appears.
func TestVirtiofsServeDAX(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("fastfs dax "), 2<<20/11+1)[:2<<20]
	if err := os.WriteFile(filepath.Join(dir, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	ch := startDoor(t, "virtiofs", "--socket-path="+sock, "--shared-dir", dir, "--dax", "--cache-size", "64M", "--log-level", "warn")
	done := ch.done
	var f *vt.Frontend
	var err error
	for i := 0; i < 200; i++ {
		if f, err = vt.Dial(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2, Protocol: vt.AllProtocol |
		1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM | 1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_FD})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Protocol&(1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM) == 0 {
		t.Fatalf("SHMEM not negotiated (%#x)", g.Protocol)
	}
	sizes, err := f.GetShmemConfig()
	if err != nil || len(sizes) != 1 || sizes[0] != 64<<20 {
		t.Fatalf("GET_SHMEM_CONFIG = %v, %v", sizes, err)
	}
	w, err := vt.NewWindow(sizes[0])
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := f.AttachWindow(w); err != nil {
		t.Fatal(err)
	}
	var unique uint64
	hdr := func(op abi.Opcode, node uint64, n int) []byte {
		unique += 2
		b := make([]byte, abi.InHeaderSize)
		(&abi.InHeader{Len: uint32(abi.InHeaderSize + n), Opcode: op, Unique: unique, NodeID: node}).Marshal(b)
		return b
	}
	q := g.Queues[1]
	submit := func(b vt.Buffers) []byte {
		t.Helper()
		out, err := q.Submit(b)
		var oh abi.OutHeader
		if err != nil || !oh.Unmarshal(out) || oh.Error != 0 {
			t.Fatalf("request %x: %x %v (error %d)", b.In[0], out, err, oh.Error)
		}
		return out[abi.OutHeaderSize:]
	}
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages | abi.InitMapAlignment)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	var io abi.InitOut
	if !io.Unmarshal(submit(vt.Buffers{In: [][]byte{hdr(abi.OpInit, 0, len(a)), a}, Out: []int{16 + abi.InitOutSize}})) || io.MapAlignment != 21 {
		t.Fatalf("INIT: map_alignment %d", io.MapAlignment)
	}
	name := []byte("f\x00")
	var e abi.EntryOut
	e.Unmarshal(submit(vt.Buffers{In: [][]byte{hdr(abi.OpLookup, 1, len(name)), name}, Out: []int{16 + abi.EntryOutSize}}))
	oa := make([]byte, abi.OpenInSize)
	(&abi.OpenIn{Flags: syscall.O_RDWR}).Marshal(oa)
	var o abi.OpenOut
	o.Unmarshal(submit(vt.Buffers{In: [][]byte{hdr(abi.OpOpen, e.NodeID, len(oa)), oa}, Out: []int{16 + abi.OpenOutSize}}))
	sa := make([]byte, abi.SetupmappingInSize)
	(&abi.SetupmappingIn{Fh: o.Fh, Len: 2 << 20, Moffset: 32 << 20, Flags: abi.SetupmappingRead}).Marshal(sa)
	submit(vt.Buffers{In: [][]byte{hdr(abi.OpSetupmapping, e.NodeID, len(sa)), sa}, Out: []int{16}})
	if !bytes.Equal(w.Bytes(32<<20, 2<<20), content) {
		t.Fatal("window does not show the file")
	}
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("virtiofs returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("virtiofs did not exit after the front-end disconnected")
	}
}
