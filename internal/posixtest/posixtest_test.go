package posixtest

import (
	"os"
	"path/filepath"
	"strings"
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

// TestDir runs the suite on any mounted directory named by the
// environment, so a guest (or a person) can run the compiled test binary
// against a virtio-fs or 9P mount:
//
//	go test -c -o posixtest.test ./internal/posixtest
//	POSIXTEST_DIR=/mnt/fs POSIXTEST_REF=/tmp/ref POSIXTEST_LACKS=tmpfile,fio \
//	    ./posixtest.test -test.run TestDir -test.v
//
// POSIXTEST_REF is a native directory for the twin runs (default: a
// temporary directory), POSIXTEST_BACKING the export as the test sees it
// (if it does), POSIXTEST_OUTSIDE a directory beside the export for the
// escape race, POSIXTEST_LACKS the capabilities the door lacks (see Cap),
// comma-separated.
func TestDir(t *testing.T) {
	dir := os.Getenv("POSIXTEST_DIR")
	if dir == "" {
		t.Skip("POSIXTEST_DIR is not set: nothing to run on (this test is for running the suite on a given mount)")
	}
	testutil.RequireRoot(t)
	env := Env{
		Dir:     dir,
		Ref:     os.Getenv("POSIXTEST_REF"),
		Backing: os.Getenv("POSIXTEST_BACKING"),
		Outside: os.Getenv("POSIXTEST_OUTSIDE"),
		Lacks:   map[Cap]string{},
	}
	for _, c := range strings.Split(os.Getenv("POSIXTEST_LACKS"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			env.Lacks[Cap(c)] = "POSIXTEST_LACKS"
		}
	}
	if env.Backing == "" || env.Outside == "" {
		env.Lacks[CapEscape] = "POSIXTEST_BACKING and POSIXTEST_OUTSIDE not both set"
	}
	Run(t, env)
}
