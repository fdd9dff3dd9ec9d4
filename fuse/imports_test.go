package fuse

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package map true (STYLE.md §1): fuse imports only
// fuse/abi, fs and the standard library; fuse/abi only the standard
// library. Test files are exempt.
func TestImports(t *testing.T) {
	const mod = "github.com/fastfsd/fastfsd/"
	for dir, allowed := range map[string][]string{
		".":   {mod + "fs", mod + "fuse/abi"},
		"abi": nil,
	} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				ok := !strings.Contains(strings.Split(path, "/")[0], ".") // standard library
				for _, a := range allowed {
					ok = ok || path == a
				}
				if path == "unsafe" || strings.HasPrefix(path, "golang.org/x/sys") {
					ok = false
				}
				if !ok {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
