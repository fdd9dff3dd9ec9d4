// Command fastfsd serves a directory (or any fs.FileSystem) to the host
// kernel through /dev/fuse, to VMs as a vhost-user-fs backend, and to 9P
// clients. Each door is a subcommand in a file of its own (mount.go,
// virtiofs.go, p9.go, probe.go, …) that registers itself in init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// command is one fastfsd subcommand.
type command struct {
	name    string
	summary string // one line for the command list
	// run parses args (without the subcommand name) and runs; a non-nil
	// error is printed as "fastfsd NAME: ERR" and exits 1. Errors say what
	// failed and what to do.
	run func(args []string) error
}

var commands = map[string]*command{}

// register adds a subcommand; called from init in each subcommand's file.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("fastfsd: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: fastfsd COMMAND [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'fastfsd COMMAND --help' for a command's flags.\n")
}

func main() {
	unmountHelperMain() // exits if this process is the mount door's unmount helper
	if filepath.Base(os.Args[0]) == "virtiofsd" {
		// virtiofsd compatibility (see below): no subcommand in argv.
		os.Args = append([]string{os.Args[0], "virtiofs"}, os.Args[1:]...)
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	name := os.Args[1]
	// virtiofsd compatibility: libvirt, QEMU scripts and Kata start
	// "virtiofsd --socket-path=… -o source=…" with no subcommand; a binary
	// installed or linked under the name virtiofsd behaves as
	// "fastfsd virtiofs".
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "fastfsd: unknown command %q\n\n", name)
		usage()
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		var st exitStatus
		if errors.As(err, &st) {
			os.Exit(int(st)) // a namespace sandbox's child said why
		}
		fmt.Fprintf(os.Stderr, "fastfsd %s: %v\n", name, err)
		os.Exit(1)
	}
}
