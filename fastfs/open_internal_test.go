package fastfs

import (
	"errors"
	"slices"
	"testing"

	"github.com/fastfsd/fastfsd/dataplane/fusedev"
)

// TestOpenEnablesURingBeforeMount: with IOUring, Open turns the fuse
// module's enable_uring on before it mounts, because the kernel builds a
// mount's INIT when the filesystem is mounted (a parameter turned on
// after it leaves that mount without io_uring: fusedev then refuses to
// serve it). No mount is made: the calls are recorded.
func TestOpenEnablesURingBeforeMount(t *testing.T) {
	var calls []string
	enabled, enable, mount := uringEnabled, uringEnable, mountFUSE
	t.Cleanup(func() { uringEnabled, uringEnable, mountFUSE = enabled, enable, mount })
	uringEnabled = func() bool { return slices.Contains(calls, "enable") }
	uringEnable = func() error { calls = append(calls, "enable"); return nil }
	errStop := errors.New("recorded")
	mountFUSE = func(string, fusedev.MountOptions) (*fusedev.Conn, error) {
		calls = append(calls, "mount")
		return nil, errStop
	}
	if _, err := Open(t.TempDir(), &MountOptions{IOUring: true}); !errors.Is(err, errStop) {
		t.Fatalf("Open: %v, want the recorded mount's error", err)
	}
	if want := []string{"enable", "mount"}; !slices.Equal(calls, want) {
		t.Errorf("Open called %v, want %v", calls, want)
	}
	calls = nil
	Open(t.TempDir(), &MountOptions{})
	if want := []string{"mount"}; !slices.Equal(calls, want) {
		t.Errorf("without IOUring Open called %v, want %v", calls, want)
	}
}
