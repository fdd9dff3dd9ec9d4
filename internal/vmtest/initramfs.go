package vmtest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed guest_init.sh
var guestInit []byte

// imageFormat changes whenever the layout of the base image changes, so
// cached images built by older code are not reused.
const imageFormat = "fastfs-vmtest-base-v1"

// File is a host file copied into the guest.
type File struct {
	Host  string // host path (symlinks are followed)
	Guest string // absolute guest path; "" = same as Host
	// Data, when non-nil, is the content (Host is then ignored).
	Data []byte
	Mode os.FileMode // permission bits; 0 = the host file's, or 0755 for Data
	// Libs copies the shared libraries the file needs (ldd) too.
	Libs bool
}

// BaseFiles are the host programs every guest image carries besides
// busybox: fio and the attr tools, with their shared libraries.
var BaseFiles = []File{
	{Host: "/usr/bin/fio", Libs: true},
	{Host: "/usr/bin/setfattr", Libs: true},
	{Host: "/usr/bin/getfattr", Libs: true},
}

// Busybox is the static busybox the guest's userland is made of.
var Busybox = "/bin/busybox"

// cacheDir is where built base images are kept.
func cacheDir() string {
	if d := os.Getenv("FASTFSD_VMTEST_CACHE"); d != "" {
		return d
	}
	if os.MkdirAll("/var/cache/fastfsd/initramfs", 0o755) == nil {
		if f, err := os.CreateTemp("/var/cache/fastfsd/initramfs", ".probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/var/cache/fastfsd/initramfs"
		}
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "fastfsd", "initramfs")
}

// lddLibs returns the shared libraries (and the dynamic loader) a binary
// needs; nil for a static binary.
func lddLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(out, []byte("statically linked")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0]) // the loader
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(l))
		}
	}
	return libs, nil
}

// fileEntries turns Files into cpio entries, adding shared libraries; the
// returned dirs are the library directories (for LD_LIBRARY_PATH).
func fileEntries(files []File) (entries []cpioEntry, libDirs []string, err error) {
	dirs := map[string]bool{}
	for _, f := range files {
		g := f.Guest
		if g == "" {
			g = f.Host
		}
		data, mode := f.Data, f.Mode
		if data == nil {
			st, err := os.Stat(f.Host)
			if err != nil {
				return nil, nil, fmt.Errorf("guest file: %v", err)
			}
			if data, err = os.ReadFile(f.Host); err != nil {
				return nil, nil, err
			}
			if mode == 0 {
				mode = st.Mode().Perm()
			}
		} else if mode == 0 {
			mode = 0o755
		}
		entries = append(entries, cpioEntry{name: g, mode: modeRegular | uint32(mode.Perm()), data: data})
		if f.Libs && f.Host != "" {
			libs, err := lddLibs(f.Host)
			if err != nil {
				return nil, nil, err
			}
			for _, l := range libs {
				b, err := os.ReadFile(l)
				if err != nil {
					return nil, nil, err
				}
				entries = append(entries, cpioEntry{name: l, mode: modeRegular | 0o755, data: b})
				dirs[path.Dir(l)] = true
			}
		}
	}
	for d := range dirs {
		libDirs = append(libDirs, d)
	}
	sort.Strings(libDirs)
	return entries, libDirs, nil
}

// imageKey hashes everything a base image is built from.
func imageKey(k *Kernel, modules []string, files []File) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", imageFormat, k.Dir, k.Release, guestInit)
	stamp := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
		return nil
	}
	if err := stamp(Busybox); err != nil {
		return "", fmt.Errorf("busybox: %v (install busybox-static: scripts/deps.sh)", err)
	}
	fmt.Fprintf(h, "modules %q\n", modules)
	for _, f := range files {
		fmt.Fprintf(h, "file %q %q %o %v %x\n", f.Host, f.Guest, f.Mode, f.Libs, sha256.Sum256(f.Data))
		if f.Data == nil {
			if err := stamp(f.Host); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

var buildMu sync.Mutex

// BuildBase builds (or finds in the cache) the base initramfs: busybox,
// /init, the kernel modules with a modules.dep, and files (plus their
// libraries). It returns the path of the uncompressed cpio archive.
// Uncompressed on purpose: fio's libraries are ~80 MB and decompressing
// them under TCG costs more than loading them.
func BuildBase(k *Kernel, modules []string, files []File) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	key, err := imageKey(k, modules, files)
	if err != nil {
		return "", err
	}
	dir := cacheDir()
	out := filepath.Join(dir, "base-"+key+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}

	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return "", fmt.Errorf("busybox: %v (install busybox-static: scripts/deps.sh)", err)
	}
	if libs, _ := lddLibs(Busybox); len(libs) > 0 {
		return "", fmt.Errorf("%s is dynamically linked; install busybox-static", Busybox)
	}
	entries := []cpioEntry{
		{name: "init", mode: modeRegular | 0o755, data: guestInit},
		{name: "bin/busybox", mode: modeRegular | 0o755, data: bb},
		{name: "bin/sh", mode: modeSymlink | 0o777, data: []byte("busybox")},
		{name: "dev/console", mode: modeCharDev | 0o600, rmajor: 5, rmin: 1},
		{name: "dev/null", mode: modeCharDev | 0o666, rmajor: 1, rmin: 3},
		{name: "lib64", mode: modeDir | 0o755},
		{name: "etc/passwd", mode: modeRegular | 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{name: "etc/group", mode: modeRegular | 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}

	// Modules, decompressed, at lib/modules/<release>/<path>.ko with a
	// modules.dep of their own so modprobe works; /etc/fastfs/modules
	// lists them in load order for init's insmod.
	order, err := k.resolveModules(modules)
	if err != nil {
		return "", err
	}
	var load, dep []string
	plain := map[string]string{}
	for _, rel := range order {
		b, p, err := readModule(filepath.Join(k.ModulesDir, rel))
		if err != nil {
			return "", err
		}
		rp, _ := filepath.Rel(k.ModulesDir, p)
		plain[rel] = rp
		g := path.Join("lib/modules", k.Release, rp)
		entries = append(entries, cpioEntry{name: g, mode: modeRegular | 0o644, data: b})
		load = append(load, "/"+g)
	}
	depLines, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(depLines), "\n") {
		own, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if p, ok := plain[own]; ok {
			var ds []string
			for _, d := range strings.Fields(rest) {
				if q, ok := plain[d]; ok {
					ds = append(ds, q)
				}
			}
			dep = append(dep, p+": "+strings.Join(ds, " "))
		}
	}
	entries = append(entries,
		cpioEntry{name: path.Join("lib/modules", k.Release, "modules.dep"), mode: modeRegular | 0o644, data: []byte(strings.Join(dep, "\n") + "\n")},
		cpioEntry{name: "etc/fastfs/modules", mode: modeRegular | 0o644, data: []byte(strings.Join(load, "\n") + "\n")},
	)

	fe, libDirs, err := fileEntries(files)
	if err != nil {
		return "", err
	}
	entries = append(entries, fe...)
	entries = append(entries, cpioEntry{name: "etc/fastfs/ldpath", mode: modeRegular | 0o644, data: []byte(strings.Join(libDirs, ":") + "\n")})

	tmp, err := os.CreateTemp(dir, ".base-*.cpio")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := writeCpio(tmp, entries); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	os.Chmod(tmp.Name(), 0o644)
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	pruneCache(dir, 4)
	return out, nil
}

// pruneCache keeps the keep newest base images in dir (~90 MB each).
func pruneCache(dir string, keep int) {
	old, _ := filepath.Glob(filepath.Join(dir, "base-*.cpio"))
	if len(old) <= keep {
		return
	}
	type img struct {
		path string
		mod  int64
	}
	var imgs []img
	for _, p := range old {
		if st, err := os.Stat(p); err == nil {
			imgs = append(imgs, img{p, st.ModTime().UnixNano()})
		}
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].mod > imgs[j].mod })
	for _, im := range imgs[min(keep, len(imgs)):] {
		os.Remove(im.path)
	}
}

// overlay builds the per-run archive appended to the base image: the
// caller's files, the run script, mounts and environment.
func overlay(files []File, extra []cpioEntry) ([]byte, error) {
	fe, libDirs, err := fileEntries(files)
	if err != nil {
		return nil, err
	}
	fe = append(fe, extra...)
	if len(libDirs) > 0 {
		fe = append(fe, cpioEntry{name: "etc/fastfs/ldpath.extra", mode: modeRegular | 0o644, data: []byte(strings.Join(libDirs, ":") + "\n")})
	}
	var buf bytes.Buffer
	if err := writeCpio(&buf, fe); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
