package importcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/fastfsd/fastfsd/"

// rule says what a package (prefix match on the path inside the module)
// must not import, directly: module packages by prefix, or other import
// paths exactly or by prefix.
type rule struct {
	pkg    string
	forbid []string
	why    string
}

var rules = []rule{
	{"fuse/abi", []string{mod, "golang.org/x/sys/unix", "syscall", "os"}, "the kernel ABI only: no behaviour"},
	{"fs", []string{mod, "golang.org/x/sys/unix"}, "the API knows no transport and no syscalls"},
	{"fuse", []string{mod + "dataplane", mod + "ring", mod + "mem", mod + "splice", mod + "vhostuser", mod + "p9", mod + "internal/sys", "golang.org/x/sys/unix", "net"}, "the engine knows nothing of fds, rings or sockets"},
	{"p9", []string{mod + "fuse", mod + "ring", mod + "mem", mod + "vhostuser", mod + "dataplane", mod + "internal/metrics", "github.com/prometheus"}, "9P serves fs only (and counts into internal/stats)"},
	{"mem", []string{mod + "ring", mod + "fuse", mod + "fs", mod + "vhostuser", mod + "dataplane"}, "guest memory knows nothing above it"},
	{"ring", []string{mod + "fuse", mod + "fs", mod + "vhostuser", mod + "dataplane"}, "virtqueues know nothing of FUSE"},
	{"splice", []string{mod + "fuse", mod + "fs", mod + "dataplane"}, "pipes know nothing of FUSE"},
	{"vhostuser", []string{mod + "fuse", mod + "fs", mod + "dataplane", mod + "p9"}, "the vhost-user protocol knows nothing of FUSE (devices plug in behind an interface)"},
	{"dax", []string{mod + "dataplane", mod + "ring", mod + "vhostuser", "golang.org/x/sys/unix"}, "dax states the map/unmap interface it needs; vhostuser implements it"},
	{"dataplane", []string{mod + "perf", mod + "cmd", mod + "internal/metrics", "github.com/prometheus"}, "the data plane does not depend on its observers (it counts into internal/stats)"},
	{"perf", []string{mod + "dataplane", mod + "fuse", mod + "vhostuser", mod + "ring", mod + "mem", mod + "p9"}, "perf observes from outside"},
	{"internal/stats", []string{mod}, "hot-path counters are a leaf"},
	{"internal/sys", []string{mod}, "raw syscalls are a leaf"},
	{"internal/proccpu", []string{mod}, "a process tree's CPU time from /proc: a leaf any harness may use"},
	{"internal/sockfile", []string{mod}, "socket files born private: a leaf any door may use"},
	{"internal/waitshare", []string{mod}, "the per-uid share of wait slots: a leaf any door may use"},
	{"internal/sandbox", []string{mod + "dataplane", mod + "fuse", mod + "fs", mod + "p9", mod + "vhostuser", mod + "ring", mod + "mem", mod + "splice", mod + "dax"}, "confinement knows nothing of what it confines"},
	{"fs/passthrough", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser"}, "backends serve any door"},
	{"fs/idmap", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser", mod + "fs/passthrough", "golang.org/x/sys/unix"}, "wrappers over fs.FileSystem serve any door and any backend"},
	{"fastfs", []string{mod + "cmd", mod + "perf", mod + "fs/passthrough", mod + "internal/metrics", mod + "internal/sandbox", mod + "examples"}, "the library's serving API serves any fs.FileSystem; cmd/fastfsd sits above it, backends beside it"},
	{"cmd/fastfsd", []string{mod + "dataplane/fusedev", mod + "dataplane/uring", mod + "dataplane/virtiofs"}, "the daemon serves every door through the public fastfs API (its tests may reach below it)"},
	{"examples", []string{mod + "internal", mod + "dataplane", mod + "fuse", mod + "p9", mod + "vhostuser", mod + "ring", mod + "mem", mod + "cmd"}, "examples use the public library only (fastfs, fs and its backends)"},
	{"fs/nodefs", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser", mod + "fastfs", mod + "fs/passthrough", "golang.org/x/sys/unix"}, "the node tree is an fs.FileSystem any door serves"},
	{"fs/vfs", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser", mod + "fs/passthrough", mod + "fastfs", "golang.org/x/sys/unix"}, "the VFS routes fs.FileSystem calls to any backends over any door"},
	{"fs/memfs", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser", mod + "fastfs", mod + "fs/passthrough", "golang.org/x/sys/unix"}, "the in-memory filesystem is an fs.FileSystem any door serves"},
	{"fs/xattrmap", []string{mod + "fuse", mod + "p9", mod + "ring", mod + "dataplane", mod + "vhostuser", mod + "fs/passthrough", "golang.org/x/sys/unix"}, "wrappers over fs.FileSystem serve any door and any backend"},
}

type listed struct {
	ImportPath string
	Name       string
	Imports    []string
}

func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", "github.com/fastfsd/fastfsd/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(p.ImportPath, mod)
		if p.Name == "main" && !strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "examples/") {
			continue // generators and tools inside a package's tree (fuse/abi/internal/abigen)
		}
		for _, r := range rules {
			if rel != r.pkg && !strings.HasPrefix(rel, r.pkg+"/") {
				continue
			}
			// A rule for "fs" must not apply to fs/passthrough's own rule
			// set beyond what it says; sub-packages inherit the parent's
			// rules only where no more specific rule exists.
			if r.pkg == "fs" && rel != "fs" {
				continue
			}
			if r.pkg == "fuse" && rel == "fuse/abi" {
				continue
			}
			for _, imp := range p.Imports {
				for _, f := range r.forbid {
					bad := imp == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) ||
						(strings.HasPrefix(f, mod) && !strings.HasSuffix(f, "/") && (imp == f || strings.HasPrefix(imp, f+"/")))
					if bad && strings.HasPrefix(imp, mod) && strings.HasPrefix(imp, mod+r.pkg) {
						bad = false // a package may import its own sub-packages
					}
					if bad && strings.HasSuffix(p.ImportPath, "test") {
						bad = false // test doubles (vhostusertest, ringtest) play the other side
					}
					if bad {
						t.Errorf("%s imports %s: %s (docs/DESIGN.md, package map)", rel, imp, r.why)
					}
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list returned %d packages; is the module root at ../..?", seen)
	}
}
