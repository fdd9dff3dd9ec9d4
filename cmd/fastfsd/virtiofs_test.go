package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/fs/passthrough"
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
			return c.fd == 3 && c.cache == passthrough.CacheAlways && c.locks
		}, warns: 1},
		{args: "--socket-path=/s --shared-dir=/d --cache never --tag myfs --num-request-queues 4 --log-level debug", check: func(c *virtiofsConfig) bool {
			return c.cache == passthrough.CacheNever && c.tag == "myfs" && c.queues == 4 && c.level == slog.LevelDebug
		}},
		{args: "--socket-path=/s --shared-dir=/d --sandbox none --seccomp none --announce-submounts -f --syslog", warns: 4},
		{args: "--socket-path=/s --shared-dir=/d -o sandbox=chroot,timeout=5", warns: 2},
		{args: "--socket-path=/s --shared-dir=/d --cpus 0,1 --busy-poll 50us --keep-listening", check: func(c *virtiofsConfig) bool {
			return len(c.cpus) == 2 && c.busyPoll.Microseconds() == 50 && c.keep
		}},
		{args: "--print-capabilities", check: func(c *virtiofsConfig) bool { return c.printCaps }},
		{args: "--socket-path=/s", err: "no shared directory"},
		{args: "--shared-dir=/d", err: "exactly one of"},
		{args: "--socket-path=/s --fd 3 --shared-dir=/d", err: "exactly one of"},
		{args: "--socket-path=/s --shared-dir=/d --bogus", err: "unknown flag --bogus"},
		{args: "--socket-path=/s --shared-dir=/d -o bogus", err: "-o bogus: unknown option"},
		{args: "--socket-path=/s --shared-dir=/d --cache=sometimes", err: "--cache"},
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

func TestCapabilities(t *testing.T) {
	// What libvirt reads; the C virtiofsd prints exactly this.
	if capabilities != "{\n  \"type\": \"fs\"\n}\n" {
		t.Fatalf("capabilities %q", capabilities)
	}
}
