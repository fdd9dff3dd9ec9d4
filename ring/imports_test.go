package ring_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the package map of STYLE.md §1 true: ring imports mem
// (and its own internal package), never system calls or the layers above.
func TestImports(t *testing.T) {
	for _, dir := range []string{".", "internal/vring"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			switch {
			case imp == "syscall", imp == "os", strings.HasPrefix(imp, "golang.org/x/sys"):
				t.Errorf("%s imports %s: ring makes no system calls", dir, imp)
			case strings.HasPrefix(imp, "github.com/fastfsd/fastfsd/") &&
				imp != "github.com/fastfsd/fastfsd/mem" &&
				!strings.HasPrefix(imp, "github.com/fastfsd/fastfsd/ring/"):
				t.Errorf("%s imports %s: ring may import only mem", dir, imp)
			}
		}
	}
}
