package p9

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package map true: p9's non-test files import the
// standard library (not unsafe) and, of this module, fs and the leaf
// internal/waitshare (the per-uid share of wait slots every door applies).
func TestImports(t *testing.T) {
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case path == "github.com/fastfsd/fastfsd/fs", path == "github.com/fastfsd/fastfsd/internal/waitshare":
			case path == "unsafe":
				t.Errorf("%s imports unsafe", name)
			case strings.Contains(first, "."):
				t.Errorf("%s imports %s: p9 may import fs, internal/waitshare and the standard library only", name, path)
			}
		}
	}
}
