package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse/abi"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

func TestParseVirtiofsArgs(t *testing.T) {
	for _, tc := range []struct {
		args  string
		check func(*virtiofsConfig) bool
		warns int
		err   string
	}{
		{args: "--socket-path=/s --shared-dir /d", check: func(c *virtiofsConfig) bool {
			return c.socketPath == "/s" && c.dir == "/d" && c.cache == passthrough.CacheAuto && c.xattr
		}},
		{args: "--socket-path /s -o source=/d,cache=none,no_xattr,writeback", check: func(c *virtiofsConfig) bool {
			return c.dir == "/d" && c.cache == passthrough.CacheNever && !c.xattr && !c.writeback
		}, warns: 1}, // writeback dropped with cache=none
		{args: "--fd=3 -o source=/d -o cache=always -o posix_lock --thread-pool-size=64", check: func(c *virtiofsConfig) bool {
			return c.fd == 3 && c.cache == passthrough.CacheAlways && c.locks && c.helpers == 64
		}},
		{args: "--fd=3 -o source=/d -o posix_lock", warns: 0}, // lock waits run off the worker anyway
		{args: "--fd=3 -o source=/d --thread-pool-size -1", err: "--thread-pool-size"},
		{args: "--socket-path=/s --shared-dir=/d --cache never --tag myfs --num-request-queues 4 --log-level debug", check: func(c *virtiofsConfig) bool {
			return c.cache == passthrough.CacheNever && c.tag == "myfs" && c.queues == 4 && c.level == slog.LevelDebug
		}},
		{args: "--socket-path=/s --shared-dir=/d --sandbox none --seccomp none -f --syslog --preserve-noatime --allow-mmap", check: func(c *virtiofsConfig) bool {
			return c.syslog && len(c.noops) == 3 && c.sandbox.sandbox == "none" && c.sandbox.seccomp == "none"
		}},
		{args: "--socket-path=/s --shared-dir=/d -o sandbox=chroot,modcaps=+sys_admin:-mknod", check: func(c *virtiofsConfig) bool {
			return c.sandbox.sandbox == "chroot" && c.sandbox.modcaps == "+sys_admin:-mknod"
		}},
		{args: "--socket-path=/s --shared-dir=/d --seccomp=trap --modcaps=-chown", check: func(c *virtiofsConfig) bool {
			return c.sandbox.seccomp == "trap" && c.sandbox.modcaps == "-chown" && c.sandbox.sandbox == "auto"
		}},
		// Refused by name, with the reason.
		{args: "--socket-path=/s --shared-dir=/d --announce-submounts", err: "--announce-submounts: not implemented"},
		{args: "--socket-path=/s --shared-dir=/d --security-label", check: func(c *virtiofsConfig) bool { return c.securityLabel }},
		{args: "--socket-path=/s --shared-dir=/d -o security_label", check: func(c *virtiofsConfig) bool { return c.securityLabel }},
		{args: "--socket-path=/s --shared-dir=/d -o security_label,no_security_label", check: func(c *virtiofsConfig) bool { return !c.securityLabel }},
		{args: "--socket-path=/s --shared-dir=/d --security-label --no-xattr", err: "--security-label needs extended attributes"},
		{args: "--socket-path=/s --shared-dir=/d --migration-mode=find-paths", err: "migration"},
		{args: "--socket-path=/s --shared-dir=/d --daemonize", err: "does not daemonize"},
		{args: "--socket-path=/s --shared-dir=/d -o timeout=5", err: "-o timeout=5: not implemented"},
		{args: "--socket-path=/s --shared-dir=/d -o allow_root", err: "allow_root"},
		{args: "--socket-path=/s --shared-dir=/d --readonly --allow-direct-io --no-readdirplus --rlimit-nofile 4096", check: func(c *virtiofsConfig) bool {
			return c.readOnly && c.directIO && c.noReaddirplus && c.rlimitNofile == 4096 && !c.allowDevices
		}},
		{args: "--socket-path=/s --shared-dir=/d --allow-devices", check: func(c *virtiofsConfig) bool { return c.allowDevices }},
		{args: "--socket-path=/s --shared-dir=/d --allow-devices=1", err: "takes no value"},
		{args: "--socket-path=/s --shared-dir=/d -o allow_direct_io,no_readdirplus,posix_acl", check: func(c *virtiofsConfig) bool {
			return c.directIO && c.noReaddirplus && c.policy.posixACL && c.xattr
		}},
		{args: "--socket-path=/s --shared-dir=/d --posix-acl --no-xattr", err: "--posix-acl needs extended attributes"},
		{args: "--socket-path=/s --shared-dir=/d --no-xattr --posix-acl", check: func(c *virtiofsConfig) bool {
			return c.policy.posixACL && c.xattr // implies --xattr
		}},
		{args: "--socket-path=/s --shared-dir=/d --xattrmap=:map::user.virtiofs.:", check: func(c *virtiofsConfig) bool {
			return c.policy.xattrmapSet && c.policy.xattrmap == ":map::user.virtiofs.:"
		}},
		{args: "--socket-path=/s --shared-dir=/d -o xattrmap=/ok/all///", check: func(c *virtiofsConfig) bool {
			return c.policy.xattrmap == "/ok/all///"
		}},
		{args: "--socket-path=/s --shared-dir=/d --xattrmap none", check: func(c *virtiofsConfig) bool { return c.policy.xattrmap == "none" }},
		{args: "--socket-path=/s --shared-dir=/d --xattrmap :prefix:all:a", err: "xattrmap: rule 1"},
		{args: "--socket-path=/s --shared-dir=/d --xattrmap=:ok:all::: --xattrmap=:ok:all:::", err: "given twice"},
		{args: "--socket-path=/s --shared-dir=/d --translate-uid map:0:100000:65536 --translate-uid=forbid-guest:65536:10 --translate-gid squash-guest:0:100:4294967295 --uid-map=:70000:5000:1:", check: func(c *virtiofsConfig) bool {
			return len(c.policy.uids) == 3 && len(c.policy.gids) == 1
		}},
		{args: "--socket-path=/s --shared-dir=/d --translate-uid map:0:1", err: "--translate-uid translation"},
		{args: "--socket-path=/s --shared-dir=/d --gid-map 0:1:1", err: "--gid-map id map"},
		{args: "--socket-path=/s --shared-dir=/d --translate-uid map:0:1000:10 --translate-uid guest:5:0:1", err: "overlaps"},
		{args: "--socket-path=/s --shared-dir=/d --translate-uid map:0:1000:10 --posix-acl", err: "--posix-acl cannot be combined"},
		{args: "--socket-path=/s --shared-dir=/d --rlimit-nofile lots", err: "--rlimit-nofile"},
		{args: "-V", check: func(c *virtiofsConfig) bool { return c.version }},
		{args: "--socket-path=/s --shared-dir=/d --cpus 0,1 --busy-poll 50us --keep-listening", check: func(c *virtiofsConfig) bool {
			return len(c.cpus) == 2 && c.busyPoll.Microseconds() == 50 && c.adaptivePoll == 0 && c.keep
		}},
		{args: "--socket-path=/s --shared-dir=/d", check: func(c *virtiofsConfig) bool {
			return c.busyPoll == 0 && c.adaptivePoll == fastfs.DefaultAdaptivePoll // auto by default
		}},
		{args: "--socket-path=/s --shared-dir=/d --busy-poll 50us --busy-poll auto", check: func(c *virtiofsConfig) bool {
			return c.busyPoll == 0 && c.adaptivePoll == fastfs.DefaultAdaptivePoll
		}},
		{args: "--socket-path=/s --shared-dir=/d --busy-poll 0", check: func(c *virtiofsConfig) bool { return c.busyPoll == 0 && c.adaptivePoll == 0 }},
		{args: "--socket-path=/s --shared-dir=/d --busy-poll often", err: "want auto, 0 or a duration"},
		{args: "--socket-path=/s --shared-dir=/d --busy-poll 2s", err: "--busy-poll"},
		{args: "--socket-path=/s --shared-dir=/d --cpus auto", check: func(c *virtiofsConfig) bool { return c.cpusAuto }},
		{args: "--socket-path=/s --shared-dir=/d --cpus 0,1 --cpus none", check: func(c *virtiofsConfig) bool { return c.cpusNone && c.cpus == nil }},
		{args: "--socket-path=/s --shared-dir=/d --cpus 0,x", err: "--cpus"},
		{args: "--print-capabilities", check: func(c *virtiofsConfig) bool { return c.printCaps }},
		{args: "--socket-path=/s", err: "no shared directory"},
		{args: "--shared-dir=/d", err: "exactly one of"},
		{args: "--socket-path=/s --fd 3 --shared-dir=/d", err: "exactly one of"},
		{args: "--socket-path=/s --shared-dir=/d --bogus", err: "unknown flag --bogus"},
		{args: "--socket-path=/s --shared-dir=/d -o bogus", err: "-o bogus: unknown option"},
		{args: "--socket-path=/s --shared-dir=/d --cache=sometimes", err: "--cache"},
		{args: "--socket-path=/s --shared-dir=/d --cache=metadata", check: func(c *virtiofsConfig) bool { return c.cache == passthrough.CacheMetadata }},
		{args: "--socket-path=/s --shared-dir=/d --num-request-queues 0", err: "--num-request-queues"},
		{args: "--socket-path=/s --shared-dir=/d --tag 0123456789012345678901234567890123456", err: "--tag"},
		{args: "--socket-path=/s --shared-dir=/d --xattr=yes", err: "takes no value"},
		{args: "--socket-path", err: "needs a value"},
		{args: "--socket-path=/s --shared-dir=/d extra", err: "unexpected argument"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			c, warns, err := parseVirtiofsArgs(strings.Fields(tc.args))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(c) {
				t.Fatalf("config %+v", c)
			}
			if len(warns) != tc.warns {
				t.Fatalf("warnings %q, want %d", warns, tc.warns)
			}
		})
	}
}

// TestCapabilities runs "fastfsd virtiofs --print-capabilities" as a
// process, as libvirt does, and checks what it prints: a JSON object of the
// vhost-user spec's back-end program conventions naming type "fs" and no
// feature we do not implement (no "features": no migration); and, where
// QEMU's C virtiofsd is installed, byte for byte what it prints.
func TestCapabilities(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--print-capabilities")
	cmd.Env = append(os.Environ(), "FASTFSD_TEST_CHILD=virtiofs")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--print-capabilities: %v", err)
	}
	var caps map[string]any
	if err := json.Unmarshal(out, &caps); err != nil {
		t.Fatalf("--print-capabilities printed %q, not JSON: %v", out, err)
	}
	if len(caps) != 1 || caps["type"] != "fs" {
		t.Fatalf("--print-capabilities = %v, want exactly {\"type\": \"fs\"}", caps)
	}
	for _, c := range []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"} {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		ref, err := exec.Command(c, "--print-capabilities").Output()
		if err != nil {
			t.Fatalf("%s --print-capabilities: %v", c, err)
		}
		if !bytes.Equal(out, ref) {
			t.Errorf("fastfsd prints %q, %s prints %q", out, c, ref)
		}
		return
	}
	t.Log("no C virtiofsd installed to compare with")
}

// TestVirtiofsServe runs the subcommand on a socket path, plays QEMU and
// the guest through it, and checks it returns (exit 0) once the front-end
// disconnects after an orderly stop, as virtiofsd does.
func TestVirtiofsServe(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644)
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	ch := startDoor(t, "virtiofs", "--socket-path="+sock, "-o", "source="+dir+",cache=none", "--log-level", "warn")
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
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// FUSE INIT then LOOKUP "hello" on the first request queue.
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	hdr := func(op abi.Opcode, node uint64, n int) []byte {
		b := make([]byte, abi.InHeaderSize)
		(&abi.InHeader{Len: uint32(abi.InHeaderSize + n), Opcode: op, Unique: 2, NodeID: node}).Marshal(b)
		return b
	}
	out, err := g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpInit, 0, len(a)), a}, Out: []int{16 + abi.InitOutSize}})
	if err != nil || len(out) < 16 {
		t.Fatalf("INIT: %x %v", out, err)
	}
	name := []byte("hello\x00")
	out, err = g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpLookup, 1, len(name)), name}, Out: []int{16 + abi.EntryOutSize}})
	var oh abi.OutHeader
	if err != nil || !oh.Unmarshal(out) || oh.Error != 0 || len(out) != 16+abi.EntryOutSize {
		t.Fatalf("LOOKUP: %x %v", out, err)
	}
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("virtiofs returned %v, want nil after an orderly disconnect", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("virtiofs did not exit after the front-end disconnected")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", sock, err)
	}
}
