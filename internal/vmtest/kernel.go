package vmtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DefaultKernelDir is where scripts/deps.sh unpacks the guest kernel
// (a symlink to <package>-<version>/ holding boot/vmlinuz-* and lib/modules/*).
const DefaultKernelDir = "/var/cache/fastfsd/guest-kernel/current"

// DefaultModules are the modules the guest loads at boot (with their
// dependencies); built-in ones are skipped.
var DefaultModules = []string{
	"virtio_pci", "virtio_console", "fuse", "virtiofs",
	"netfs", "9pnet", "9pnet_virtio", "9pnet_fd", "9p",
	// fastfsd 9p identifies a loopback tcp client through sock_diag.
	"inet_diag", "tcp_diag",
}

// Kernel is an unpacked guest kernel.
type Kernel struct {
	Dir        string // package root (resolved)
	Vmlinuz    string
	Release    string // e.g. 6.12.117+deb12-amd64
	ModulesDir string // lib/modules/<Release>
}

// FindKernel locates the guest kernel: $FASTFSD_GUEST_KERNEL_DIR, else
// DefaultKernelDir. The error says how to get one.
func FindKernel() (*Kernel, error) {
	dir := os.Getenv("FASTFSD_GUEST_KERNEL_DIR")
	if dir == "" {
		dir = DefaultKernelDir
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("no guest kernel at %s (%v); run scripts/deps.sh or set FASTFSD_GUEST_KERNEL_DIR", dir, err)
	}
	vms, _ := filepath.Glob(filepath.Join(real, "boot", "vmlinuz-*"))
	if len(vms) == 0 {
		return nil, fmt.Errorf("no boot/vmlinuz-* in %s; run scripts/deps.sh", real)
	}
	k := &Kernel{Dir: real, Vmlinuz: vms[len(vms)-1]}
	k.Release = strings.TrimPrefix(filepath.Base(k.Vmlinuz), "vmlinuz-")
	k.ModulesDir = filepath.Join(real, "lib", "modules", k.Release)
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err != nil {
		return nil, fmt.Errorf("guest kernel %s has no modules.dep (%v); run scripts/deps.sh", real, err)
	}
	return k, nil
}

// modName normalises a module name or path to its name: "kernel/fs/9p/9p.ko.xz" → "9p",
// "virtio-pci" → "virtio_pci".
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// resolveModules returns the module files (relative to ModulesDir) to load,
// dependencies first, skipping built-ins. An unknown module is an error.
func (k *Kernel) resolveModules(names []string) ([]string, error) {
	deps := map[string][]string{} // name -> [own path, dep paths...]
	byName := map[string]string{}
	f, err := os.Open(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		own, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(own)
		byName[n] = own
		deps[n] = strings.Fields(rest)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var order []string
	done := map[string]bool{}
	var visit func(n string, stack int) error
	visit = func(n string, stack int) error {
		if done[n] || stack > 64 {
			return nil
		}
		own, ok := byName[n]
		if !ok {
			if builtin[n] {
				done[n] = true
				return nil
			}
			return fmt.Errorf("module %s is neither in modules.dep nor built into %s", n, k.Release)
		}
		done[n] = true
		// modules.dep lists dependencies so that the last must load first.
		d := deps[n]
		for i := len(d) - 1; i >= 0; i-- {
			if err := visit(modName(d[i]), stack+1); err != nil {
				return err
			}
		}
		order = append(order, own)
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n), 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readModule returns a module's contents decompressed (busybox insmod reads
// plain ELF), and the path without the compression suffix.
func readModule(file string) ([]byte, string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	switch {
	case strings.HasSuffix(file, ".ko"):
		return raw, file, nil
	case strings.HasSuffix(file, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, "", err
		}
		b, err := io.ReadAll(zr)
		return b, strings.TrimSuffix(file, ".gz"), err
	case strings.HasSuffix(file, ".xz"), strings.HasSuffix(file, ".zst"):
		tool, ext := "xz", ".xz"
		if strings.HasSuffix(file, ".zst") {
			tool, ext = "zstd", ".zst"
		}
		out, err := exec.Command(tool, "-dc", file).Output()
		if err != nil {
			return nil, "", fmt.Errorf("%s -dc %s: %v (install xz-utils/zstd: scripts/deps.sh)", tool, file, err)
		}
		return out, strings.TrimSuffix(file, ext), nil
	}
	return nil, "", fmt.Errorf("unknown module format %s", file)
}
