package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/idmap"
	"github.com/fastfsd/fastfsd/fs/xattrmap"
)

// fsPolicy is what every door applies between the transport and the
// passthrough filesystem: xattr name mapping and uid/gid translation
// (fs/xattrmap and fs/idmap wrap the filesystem, so the same rules hold
// for a FUSE mount, a VM and a 9P client).
type fsPolicy struct {
	xattrmap    string // rules; "" with xattrmapSet false: xattrmap.Default
	xattrmapSet bool
	uids, gids  []idmap.Entry
	posixACL    bool
	// nsUids/nsGids: a --uid-map/--gid-map was given, so IDs no entry
	// covers are unusable and shown as 65534, as in virtiofsd's user
	// namespace (idmap.Confine), not passed through unchanged.
	nsUids, nsGids bool
}

// xattrmapHelp is the flag text every door shows: the default mapping.
var xattrmapHelp = "xattr name mapping rules in virtiofsd's syntax (docs/virtiofsd-flags.md); " +
	"\"none\" passes every name unchanged. Default, so that no client sets an xattr the host acts on:\n" +
	indentRules(xattrmap.MustParse(xattrmap.Default).String(), "    ") + "\n" +
	"(trusted.* and security.* from the client are stored as user.virtiofs.<name>, read back under their own names; " +
	"the host's own trusted.*/security.* stay hidden; user.virtiofs.* cannot be named directly)"

// securityLabelHelp is the mount door's --security-label text (virtiofs
// --help writes its own, in virtiofsd's layout).
const securityLabelHelp = "ask the client for the security label (SELinux, Smack) its LSM gives each new file, directory, node or symlink (FUSE_SECURITY_CTX, Linux 6.3+) and store it as that xattr, " +
	"through the --xattrmap (by default security.selinux is stored as user.virtiofs.security.selinux); a label that cannot be stored fails the creation. Needs --xattr. " +
	"The client refuses the session (EPROTO) if its kernel cannot send labels"

// allowDevicesHelp is the --allow-devices text of the mount and 9p doors
// (virtiofs --help writes its own).
const allowDevicesHelp = "let clients create character and block device nodes (a client's root, as the host allows: CAP_MKNOD). " +
	"Off (default), MKNOD/Tmknod of a device fails with EPERM, so that no client puts into the shared directory a node through which host processes reach a host device; " +
	"FIFOs, sockets and the overlayfs whiteout (character device 0:0) are still created"

func indentRules(s, ind string) string { return ind + strings.ReplaceAll(s, "\n", "\n"+ind) }

func (p *fsPolicy) setXattrmap(v string) error {
	if p.xattrmapSet {
		return errors.New("--xattrmap given twice: put every rule in one value")
	}
	p.xattrmap, p.xattrmapSet = v, true
	if v == "none" {
		return nil
	}
	_, err := xattrmap.Parse(v)
	return err
}

func (p *fsPolicy) addTranslate(which, v string) error {
	e, err := idmap.ParseTranslate(v)
	if err != nil {
		return fmt.Errorf("--translate-%s %w", which, err)
	}
	p.add(which, e)
	return nil
}

func (p *fsPolicy) addNamespaceMap(which, v string) error {
	e, err := idmap.ParseNamespaceMap(v)
	if err != nil {
		return fmt.Errorf("--%s-map %w", which, err)
	}
	if which == "uid" {
		p.nsUids = true
	} else {
		p.nsGids = true
	}
	p.add(which, e)
	return nil
}

func (p *fsPolicy) add(which string, e idmap.Entry) {
	if which == "uid" {
		p.uids = append(p.uids, e)
	} else {
		p.gids = append(p.gids, e)
	}
}

// check validates the combination (virtiofsd's rule: translating IDs
// would leave the IDs inside POSIX ACLs untranslated).
// translates reports whether a uid or gid translation is configured.
func (p *fsPolicy) translates() bool { return len(p.uids) > 0 || len(p.gids) > 0 }

func (p *fsPolicy) check() error {
	if p.posixACL && p.translates() {
		return errors.New("--posix-acl cannot be combined with --translate-uid/--translate-gid/--uid-map/--gid-map: the IDs inside ACLs would not be translated")
	}
	_, _, err := p.idMaps()
	return err
}

// idMaps builds the uid and gid translations; with a --uid-map/--gid-map
// the rest of the ID space is confined (idmap.Confine).
func (p *fsPolicy) idMaps() (uids, gids *idmap.Map, err error) {
	ue, ge := p.uids, p.gids
	if p.nsUids {
		ue = idmap.Confine(ue)
	}
	if p.nsGids {
		ge = idmap.Confine(ge)
	}
	if uids, err = idmap.New(ue); err != nil {
		return nil, nil, fmt.Errorf("uid translation: %w", err)
	}
	if gids, err = idmap.New(ge); err != nil {
		return nil, nil, fmt.Errorf("gid translation: %w", err)
	}
	return uids, gids, nil
}

// wrap applies the policy to fsys. xattrOn says whether the filesystem
// serves xattrs at all (without, there is nothing to map).
func (p *fsPolicy) wrap(fsys fs.FileSystem, xattrOn bool) (fs.FileSystem, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if xattrOn && p.xattrmap != "none" {
		rules := xattrmap.Default
		if p.xattrmapSet {
			rules = p.xattrmap
		}
		m, err := xattrmap.Parse(rules)
		if err != nil {
			return nil, fmt.Errorf("--xattrmap: %w", err)
		}
		fsys = xattrmap.Wrap(fsys, m)
	}
	uids, gids, err := p.idMaps()
	if err != nil {
		return nil, err
	}
	return idmap.Wrap(fsys, uids, gids), nil
}

// addFlags registers --xattrmap and --translate-uid/--translate-gid on a
// flag set (the mount and 9p doors).
func (p *fsPolicy) addFlags(fl *flag.FlagSet) {
	fl.Func("xattrmap", xattrmapHelp, p.setXattrmap)
	fl.Func("translate-uid", "translate UIDs between clients and the host, as virtiofsd: guest:G:H:N, host:H:G:N, map:G:H:N, squash-guest:G:H:N, squash-host:H:G:N, forbid-guest:G:N (repeatable)",
		func(v string) error { return p.addTranslate("uid", v) })
	fl.Func("translate-gid", "as --translate-uid, for GIDs",
		func(v string) error { return p.addTranslate("gid", v) })
}

// buildVersion is the module version the binary was built from ("devel"
// for a plain go build in the tree).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "devel " + s.Value
			}
		}
	}
	return "devel"
}
