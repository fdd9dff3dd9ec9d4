package fusemount

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPassthroughInEffect: with the default flags (passthrough on) a read
// and a write of a file through the mount reach the host file without a
// READ or WRITE request, for a file made on the host and one created
// through the mount: the kernel accepted the backing file fs/passthrough
// registered (on Linux 6.12+ the inode's O_PATH fd, with no open of the
// host file). A refused registration falls back to READ/WRITE silently,
// which --debug's request log shows.
func TestPassthroughInEffect(t *testing.T) {
	bin := requirements(t)
	m := startMount(t, bin, "--debug")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := os.WriteFile(filepath.Join(m.export, "host"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(m.mnt, "host"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the mount: %d bytes, %v", len(got), err)
	}
	if err := os.WriteFile(filepath.Join(m.mnt, "new"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(m.export, "new")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the host file written through the mount: %d bytes, %v", len(got), err)
	}
	log := m.out.String()
	if !strings.Contains(log, "op=OPEN") || !strings.Contains(log, "op=CREATE") {
		t.Fatalf("--debug logged no OPEN and CREATE; the test cannot tell:\n%s", tail(log, 4000))
	}
	for _, op := range []string{"op=READ ", "op=WRITE "} {
		if strings.Contains(log, op) {
			t.Errorf("%s reached the daemon: passthrough not in effect\n%s", strings.TrimSpace(op), tail(log, 4000))
		}
	}
}
