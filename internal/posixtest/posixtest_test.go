package posixtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

func TestMain(m *testing.M) { Main(m) }

// TestNative runs the suite on a plain directory as its own door: the
// reference and the directory under test are two native directories of one
// filesystem, so every case must pass. A case that fails here is wrong.
func TestNative(t *testing.T) {
	testutil.RequireRoot(t)
	top := t.TempDir()
	// Let the non-root child reach the directories (t.TempDir's parent
	// is 0700).
	if err := os.Chmod(filepath.Dir(top), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dir", "ref", "outside"} {
		if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := Env{
		Dir:       filepath.Join(top, "dir"),
		Ref:       filepath.Join(top, "ref"),
		Backing:   filepath.Join(top, "dir"),
		Outside:   filepath.Join(top, "outside"),
		FioJobMiB: 16,
	}
	if testing.Short() {
		env.TarFiles = 300
	}
	Run(t, env)
}
