package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// FastfsdPackage is the import path of the daemon the end-to-end tests run.
const FastfsdPackage = "github.com/fastfsd/fastfsd/cmd/fastfsd"

// BuildFastfsd builds cmd/fastfsd into dir/name and returns its path. env
// is added to the go command's environment (CGO_ENABLED=0
// for a static copy a guest or the namespace sandbox can run) and flags go
// before the package (-race). The build cache makes every build after the
// first a link.
func BuildFastfsd(dir, name string, env []string, flags ...string) (string, error) {
	bin := filepath.Join(dir, name)
	args := append(append([]string{"build", "-o", bin}, flags...), FastfsdPackage)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", FastfsdPackage, err, out)
	}
	return bin, nil
}

// Buffer is a bytes.Buffer safe for one writer goroutine (a child
// process's stdout or stderr, copied by os/exec) and concurrent readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
