package mem

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the package map of STYLE.md §1 true: mem imports only
// internal/sys from this module.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/fastfsd/fastfsd/") && imp != "github.com/fastfsd/fastfsd/internal/sys" {
			t.Errorf("mem imports %s", imp)
		}
	}
}
