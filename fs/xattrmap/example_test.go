package xattrmap_test

import (
	"fmt"

	"github.com/fastfsd/fastfsd/fs/xattrmap"
)

// The default map: a client's user.* names are stored unchanged, the
// names that change how the host treats a file (trusted.*, security.*,
// system.*) are stored under user.virtiofs., and the host's own
// user.virtiofs.* names are shown to the client without the prefix.
// Wrap(fsys, m) applies a map to every xattr request of a filesystem.
func Example() {
	m := xattrmap.MustParse(xattrmap.Default)
	buf := make([]byte, 0, 512)
	for _, name := range []string{"user.comment", "security.capability", "trusted.overlay.opaque"} {
		host, errno := m.Client([]byte(name), buf)
		fmt.Printf("client %s → host %s (errno %d)\n", name, host, errno)
	}
	shown, ok := m.Server([]byte("user.virtiofs.security.selinux"))
	fmt.Printf("host user.virtiofs.security.selinux → client %s (%v)\n", shown, ok)
	// Output:
	// client user.comment → host user.comment (errno 0)
	// client security.capability → host user.virtiofs.security.capability (errno 0)
	// client trusted.overlay.opaque → host user.virtiofs.trusted.overlay.opaque (errno 0)
	// host user.virtiofs.security.selinux → client security.selinux (true)
}
