package hostile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/p9"
)

// The connection limits of fastfsd 9p against one user (issue 10): a
// member of the socket's group who opens every connection the daemon
// allows, silent or full of unread Treads, must leave the door open to
// root and to other users.

// connsArg is what a connection-limit child is told (as JSON).
type connsArg struct {
	Net, Addr string
	N         int           // connections to open
	Timeout   time.Duration // the daemon's --handshake-timeout (9p-handshake)
	File      string        // the file to read (9p-reads)
}

func (a connsArg) String() string {
	b, _ := json.Marshal(a)
	return string(b)
}

func parseConnsArg(s string) connsArg {
	var a connsArg
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		fmt.Fprintf(os.Stderr, "bad child argument %q: %v\n", s, err)
		os.Exit(2)
	}
	return a
}

// holdReport counts the connections a 9p-hold child kept and lost.
type holdReport struct {
	Open, Closed int
}

// readsClosed reports whether the server closed nc within d (it never
// writes to a connection that sent nothing).
func readsClosed(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := nc.Read(b[:])
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// p9Hold (child role) opens N connections and sends nothing on them,
// reports how many the server closed within 2 s, and holds the rest
// until stdin closes.
func p9Hold(arg string) int {
	a := parseConnsArg(arg)
	var conns []net.Conn
	for range a.N {
		nc, err := net.DialTimeout(a.Net, a.Addr, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			return 1
		}
		conns = append(conns, nc)
	}
	var rep holdReport
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed := readsClosed(nc, 2*time.Second)
			mu.Lock()
			if closed {
				rep.Closed++
			} else {
				rep.Open++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(rep)
	io.Copy(io.Discard, os.Stdin) // hold them until the parent is done
	return 0
}

// dialRaw connects and agrees on msize in Tversion; "" or what failed.
func dialRaw(network, addr string, msize uint32) (*rawClient, string) {
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, "dial: " + err.Error()
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{nc: nc, msize: msize}
	if r := c.rpc(&p9.Tversion{Msize: msize, Version: []byte(p9.Version)}); r != "ok" {
		nc.Close()
		return nil, "version: " + r
	}
	return c, ""
}

// p9Stat (child role) attaches as itself and stats the root.
func p9Stat(arg string) int {
	a := parseConnsArg(arg)
	rep := p9Report{}
	defer func() { json.NewEncoder(os.Stdout).Encode(rep) }()
	c, err := dialRaw(a.Net, a.Addr, 65536)
	if err != "" {
		rep["version"] = err
		return 0
	}
	defer c.nc.Close()
	rep["version"] = "ok"
	rep["attach"] = c.rpc(&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: uint32(os.Getuid())})
	rep["getattr"] = c.rpc(&p9.Tgetattr{Fid: 1, Mask: p9.AttrBasic})
	return 0
}

// handshakeReport is what a 9p-handshake child saw: after how long the
// server closed a silent connection and one that sent only Tversion (-1:
// not within the timeout and 10 s), and the Tgetattr of an attached
// connection idle for three timeouts.
type handshakeReport struct {
	SilentClosed, VersionedClosed time.Duration
	Attach, IdleGetattr           string
}

// p9Handshake (child role): see handshakeReport.
func p9Handshake(arg string) int {
	a := parseConnsArg(arg)
	rep := handshakeReport{SilentClosed: -1, VersionedClosed: -1}
	defer func() { json.NewEncoder(os.Stdout).Encode(rep) }()
	start := time.Now()
	attached, err := dialRaw(a.Net, a.Addr, 65536)
	if err != "" {
		rep.Attach = err
		return 0
	}
	rep.Attach = attached.rpc(&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: uint32(os.Getuid())})
	silent, derr := net.DialTimeout(a.Net, a.Addr, 5*time.Second)
	if derr != nil {
		rep.Attach = "dial: " + derr.Error()
		return 0
	}
	versioned, err := dialRaw(a.Net, a.Addr, 65536)
	if err != "" {
		rep.Attach = err
		return 0
	}
	var wg sync.WaitGroup
	for _, w := range []struct {
		nc  net.Conn
		out *time.Duration
	}{{silent, &rep.SilentClosed}, {versioned.nc, &rep.VersionedClosed}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if readsClosed(w.nc, a.Timeout+10*time.Second) {
				*w.out = time.Since(start)
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Until(start.Add(3 * a.Timeout)))
	attached.nc.SetDeadline(time.Now().Add(10 * time.Second))
	rep.IdleGetattr = attached.rpc(&p9.Tgetattr{Fid: 1, Mask: p9.AttrBasic})
	return 0
}

// readsReport: how many of a 9p-reads child's connections were served.
type readsReport struct {
	Admitted, Refused int
}

// p9Reads (child role) opens N connections with msize 1 MiB and on each
// that is served fills every request slot (16 workers, 4 read ahead) with
// a 1 MiB Tread of File whose reply it never reads — the most buffer
// memory a connection can hold — then holds them until stdin closes.
func p9Reads(arg string) int {
	a := parseConnsArg(arg)
	var rep readsReport
	var keep []*rawClient
	for range a.N {
		c, err := dialRaw(a.Net, a.Addr, 1<<20)
		if err != "" {
			rep.Refused++
			continue
		}
		for _, m := range []p9.Message{
			&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: uint32(os.Getuid())},
			&p9.Twalk{Fid: 1, Newfid: 2, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte(a.File)}},
			&p9.Tlopen{Fid: 2, Flags: p9.DotlRdonly},
		} {
			if r := c.rpc(m); r != "ok" {
				fmt.Fprintf(os.Stderr, "%v: %s\n", m.Type(), r)
				return 1
			}
		}
		c.nc.SetDeadline(time.Time{})
		for tag := uint16(10); tag < 30; tag++ {
			b, _ := p9.Encode(nil, c.msize, tag, &p9.Tread{Fid: 2, Count: 1<<20 - 64})
			if _, err := c.nc.Write(b); err != nil {
				fmt.Fprintln(os.Stderr, "Tread:", err)
				return 1
			}
		}
		rep.Admitted++
		keep = append(keep, c)
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range keep {
		c.nc.Close()
	}
	return 0
}

// rootClient connects as root (this process), attaches and stats; the
// connection stays open until the test ends.
func rootClient(t *testing.T, network, addr string) {
	t.Helper()
	c, err := dialRaw(network, addr, 65536)
	if err != "" {
		t.Fatalf("root: %s", err)
	}
	t.Cleanup(func() { c.nc.Close() })
	for _, m := range []p9.Message{
		&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: 0},
		&p9.Tgetattr{Fid: 1, Mask: p9.AttrBasic},
	} {
		if r := c.rpc(m); r != "ok" {
			t.Fatalf("root: %v: %s", m.Type(), r)
		}
	}
}

// wantStat fails unless a 9p-stat child's steps all worked.
func wantStat(t *testing.T, who string, rep p9Report) {
	t.Helper()
	for _, k := range []string{"version", "attach", "getattr"} {
		if rep[k] != "ok" {
			t.Errorf("%s: %s: %q, want ok", who, k, rep[k])
		}
	}
}

// logCount counts the lines of a stopped daemon's log holding every sub.
func logCount(d *daemon, subs ...string) int {
	n := 0
next:
	for _, line := range strings.Split(d.errb.String(), "\n") {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// otherUid is a second unprivileged user, in the socket's group too.
const otherUid = 65533

// socketGroup is the --socket-group of these tests: a gid only the
// children have.
const socketGroup = 4242

// start9pUnix starts fastfsd 9p on a unix socket its children may reach.
func start9pUnix(t *testing.T, share string, flags ...string) (*daemon, string) {
	t.Helper()
	bin := fastfsd(t)
	sock := filepath.Join(publicDir(t), "9p.sock")
	args := append([]string{"9p", "--listen", "unix:" + sock, "--shared-dir", share, "--socket-group", strconv.Itoa(socketGroup)}, flags...)
	return startDaemon(t, bin, sock, args...), sock
}

// TestP9ConnsPerUid: uid 65534 opens 12 silent connections (no handshake
// timeout): exactly --max-conns-per-uid (8, the default) stay open and
// the other 4 are closed at once, each with a log line naming the uid and
// the flag; meanwhile root opens 10 connections (root is not capped) and
// uid 65533 attaches, each statting the root.
func TestP9ConnsPerUid(t *testing.T) {
	d, sock := start9pUnix(t, p9Share(t), "--handshake-timeout", "0")
	hog := startChild(t, "9p-hold", connsArg{Net: "unix", Addr: sock, N: p9.DefaultMaxConnsPerPeer + 4}.String(), socketGroup)
	var hr holdReport
	hog.result(t, &hr)
	if hr.Open != p9.DefaultMaxConnsPerPeer || hr.Closed != 4 {
		t.Errorf("uid 65534 kept %d connections and lost %d; want %d kept, 4 closed at accept", hr.Open, hr.Closed, p9.DefaultMaxConnsPerPeer)
	}
	for range 10 {
		rootClient(t, "unix", sock)
	}
	other := startChildAs(t, otherUid, "9p-stat", connsArg{Net: "unix", Addr: sock}.String(), socketGroup)
	var rep p9Report
	other.result(t, &rep)
	wantStat(t, "uid 65533 while uid 65534 holds its cap", rep)
	d.stop(t)
	if n := logCount(d, "uid 65534", "refused", "--max-conns-per-uid"); n != 4 {
		t.Errorf("%d log lines refuse uid 65534 naming --max-conns-per-uid, want 4\n%s", n, d.errb.String())
	}
}

// TestP9RootConns: with --max-conns 6 --root-conns 2 --max-conns-per-uid
// 4, uid 65534 gets 4, uid 65533 none (the last 2 are root's), root 2 and
// then no more (--max-conns).
func TestP9RootConns(t *testing.T) {
	d, sock := start9pUnix(t, p9Share(t), "--handshake-timeout", "0", "--max-conns", "6", "--root-conns", "2", "--max-conns-per-uid", "4")
	hog := startChild(t, "9p-hold", connsArg{Net: "unix", Addr: sock, N: 6}.String(), socketGroup)
	var hr holdReport
	hog.result(t, &hr)
	if hr.Open != 4 || hr.Closed != 2 {
		t.Errorf("uid 65534 kept %d of 6 connections, lost %d; want 4 and 2", hr.Open, hr.Closed)
	}
	other := startChildAs(t, otherUid, "9p-hold", connsArg{Net: "unix", Addr: sock, N: 1}.String(), socketGroup)
	other.result(t, &hr)
	if hr.Open != 0 || hr.Closed != 1 {
		t.Errorf("uid 65533 kept %d connections into root's reserve, lost %d; want 0 and 1", hr.Open, hr.Closed)
	}
	rootClient(t, "unix", sock)
	rootClient(t, "unix", sock)
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !readsClosed(nc, 2*time.Second) {
		t.Errorf("root's 7th connection stayed open past --max-conns 6")
	}
	d.stop(t)
	if n := logCount(d, "uid 65533", "kept for root", "--root-conns"); n != 1 {
		t.Errorf("%d log lines refuse uid 65533 for root's reserve, want 1\n%s", n, d.errb.String())
	}
	if n := logCount(d, "uid 0", "--max-conns"); n != 1 {
		t.Errorf("%d log lines refuse uid 0 past --max-conns, want 1\n%s", n, d.errb.String())
	}
}

// TestP9HandshakeTimeout: with --handshake-timeout 1s, uid 65534's
// silent connection and its connection that sent only Tversion are
// closed after about a second; its attached connection, idle for 3 s,
// still serves.
func TestP9HandshakeTimeout(t *testing.T) {
	const timeout = time.Second
	d, sock := start9pUnix(t, p9Share(t), "--handshake-timeout", timeout.String())
	c := startChild(t, "9p-handshake", connsArg{Net: "unix", Addr: sock, Timeout: timeout}.String(), socketGroup)
	var rep handshakeReport
	c.result(t, &rep)
	t.Logf("silent connection closed after %v, Tversion-only after %v", rep.SilentClosed, rep.VersionedClosed)
	if rep.Attach != "ok" || rep.IdleGetattr != "ok" {
		t.Errorf("attached connection: Tattach %q, Tgetattr after 3 s idle %q; want ok, ok", rep.Attach, rep.IdleGetattr)
	}
	for what, dt := range map[string]time.Duration{"silent": rep.SilentClosed, "Tversion only": rep.VersionedClosed} {
		if dt < timeout/2 || dt > timeout+5*time.Second {
			t.Errorf("%s connection closed after %v, want about %v (-1: never)", what, dt, timeout)
		}
	}
	d.stop(t)
	if n := logCount(d, "uid 65534", "--handshake-timeout"); n != 2 {
		t.Errorf("%d log lines close uid 65534's connections naming --handshake-timeout, want 2\n%s", n, d.errb.String())
	}
}

// TestP9ConnsPerUidTCP: on loopback tcp a peer counts as its uid (the
// kernel's socket table), not the address every local user shares: uid
// 65534 keeps 8 of 10 connections, and root and uid 65533 still attach.
func TestP9ConnsPerUidTCP(t *testing.T) {
	bin := fastfsd(t)
	share := p9Share(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := &daemon{cmd: exec.Command(bin, "9p", "--listen", "tcp:"+addr, "--shared-dir", share, "--handshake-timeout", "0"), done: make(chan error, 1)}
	d.cmd.Stderr = &d.errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	waitTCP(t, d, addr)
	hog := startChild(t, "9p-hold", connsArg{Net: "tcp", Addr: addr, N: p9.DefaultMaxConnsPerPeer + 2}.String())
	var hr holdReport
	hog.result(t, &hr)
	if hr.Open != p9.DefaultMaxConnsPerPeer || hr.Closed != 2 {
		t.Errorf("uid 65534 kept %d tcp connections, lost %d; want %d and 2", hr.Open, hr.Closed, p9.DefaultMaxConnsPerPeer)
	}
	for range 10 {
		rootClient(t, "tcp", addr)
	}
	other := startChildAs(t, otherUid, "9p-stat", connsArg{Net: "tcp", Addr: addr}.String())
	var rep p9Report
	other.result(t, &rep)
	wantStat(t, "uid 65533 over tcp", rep)
	d.stop(t)
	if n := logCount(d, "uid 65534", "--max-conns-per-uid"); n != 2 {
		t.Errorf("%d log lines refuse uid 65534 naming --max-conns-per-uid, want 2\n%s", n, d.errb.String())
	}
}

// TestP9MemoryPerUid: uid 65534 tries 63 connections of msize 1 MiB, each
// with every request slot holding a 1 MiB Tread it never reads (a hostile
// try took the daemon to 1.2 GB so). Only 8 are served, and the daemon's
// RSS grows by less than the per-uid bound it logs (448 MiB).
func TestP9MemoryPerUid(t *testing.T) {
	share := p9Share(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(share, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	d, sock := start9pUnix(t, share)
	rootClient(t, "unix", sock) // the daemon serves: measure from here
	base := servingRSS(d)
	c := startChild(t, "9p-reads", connsArg{Net: "unix", Addr: sock, N: 63, File: "big"}.String(), socketGroup)
	var rep readsReport
	c.result(t, &rep)
	// Each served connection's workers pread 1 MiB and block writing
	// it; nothing tells when all 8×16 have.
	time.Sleep(2 * time.Second)
	rss := servingRSS(d)
	const bound = 448 << 20 // 8 × ((16+4) × 2 × 1 MiB + 16 MiB)
	t.Logf("uid 65534: %d connections served, %d refused; RSS %d MiB before, %d MiB after (+%d MiB; per-uid bound %d MiB)",
		rep.Admitted, rep.Refused, base>>20, rss>>20, (rss-base)>>20, bound>>20)
	if rep.Admitted != p9.DefaultMaxConnsPerPeer {
		t.Errorf("%d of uid 65534's connections served, want %d", rep.Admitted, p9.DefaultMaxConnsPerPeer)
	}
	if rss-base > bound {
		t.Errorf("RSS grew by %d MiB, past the per-uid bound of %d MiB", (rss-base)>>20, bound>>20)
	}
	rootClient(t, "unix", sock) // root still gets in
	c.stdin.Close()
	c.cmd.Wait()
	d.stop(t)
	if !strings.Contains(d.errb.String(), "448.0 MiB for one uid") {
		t.Errorf("the start-up log does not state the per-uid bound (448.0 MiB)\n%s", d.errb.String())
	}
}

// servingRSS is the resident set of the process serving d: d itself, or
// its one child when a sandbox made d a supervisor.
func servingRSS(d *daemon) int64 {
	pid := d.cmd.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []string
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		kids = append(kids, strings.Fields(string(b))...)
	}
	if len(kids) == 1 {
		if c, err := strconv.Atoi(kids[0]); err == nil {
			pid = c
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// waitTCP waits until d accepts on addr.
func waitTCP(t *testing.T, d *daemon, addr string) {
	t.Helper()
	for i := 0; ; i++ {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
			return
		}
		select {
		case err := <-d.done:
			t.Fatalf("fastfsd 9p exited: %v\n%s", err, d.errb.String())
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatal("fastfsd 9p did not listen within 10 s")
		}
	}
}

// TestP9ConnsPerAddress: a network peer (--insecure-tcp) cannot be
// identified, so it counts as its address. In a private network namespace
// whose lo holds two addresses that are not loopback ones (TEST-NET-2),
// --max-conns-per-uid 3: from the first address 3 of 5 connections stay
// open and 2 are closed at accept with a log line naming the address; the
// second address still attaches and stats.
func TestP9ConnsPerAddress(t *testing.T) {
	bin := fastfsd(t)
	testutil.RequireCommand(t, "unshare", "ip")
	share := p9Share(t)
	const a1, a2 = "198.51.100.1", "198.51.100.2"
	addr := a1 + ":5640"
	script := fmt.Sprintf(`ip link set lo up && ip addr add %s/32 dev lo && ip addr add %s/32 dev lo && exec "$0" "$@"`, a1, a2)
	d := &daemon{cmd: exec.Command("unshare", "--net", "sh", "-c", script, bin, "9p", "--listen", "tcp:"+addr, "--insecure-tcp",
		"--shared-dir", share, "--handshake-timeout", "0", "--max-conns-per-uid", "3"), done: make(chan error, 1)}
	d.cmd.Stderr = &d.errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	ns := fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid)
	var self, st syscall.Stat_t
	syscall.Stat("/proc/self/ns/net", &self)
	for i := 0; ; i++ { // until the daemon, in its own namespace, listens
		if syscall.Stat(ns, &st) == nil && st.Ino != self.Ino {
			if conns, err := dialInNetns(ns, a2, addr, 1); err == nil {
				conns[0].Close()
				break
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("fastfsd 9p in a network namespace exited: %v\n%s", err, d.errb.String())
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			d.cmd.Process.Kill()
			t.Fatal("fastfsd 9p did not listen in its network namespace within 10 s")
		}
	}
	conns, err := dialInNetns(ns, a1, addr, 5)
	if err != nil {
		t.Fatal(err)
	}
	var open, closed int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nc := range conns {
		defer nc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := readsClosed(nc, 2*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if c {
				closed++
			} else {
				open++
			}
		}()
	}
	wg.Wait()
	if open != 3 || closed != 2 {
		t.Errorf("%s kept %d of 5 connections, lost %d; want 3 and 2", a1, open, closed)
	}
	other, err := dialInNetns(ns, a2, addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other[0].Close()
	other[0].SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{nc: other[0], msize: 65536}
	for _, m := range []p9.Message{
		&p9.Tversion{Msize: 65536, Version: []byte(p9.Version)},
		&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: 0},
		&p9.Tgetattr{Fid: 1, Mask: p9.AttrBasic},
	} {
		if r := c.rpc(m); r != "ok" {
			t.Errorf("%s while %s holds its cap: %v: %s", a2, a1, m.Type(), r)
		}
	}
	d.stop(t)
	if n := logCount(d, "ip "+a1, "refused", "--max-conns-per-uid"); n != 2 {
		t.Errorf("%d log lines refuse ip %s naming --max-conns-per-uid, want 2\n%s", n, a1, d.errb.String())
	}
}

// dialInNetns connects n times to addr from local address src inside the
// network namespace ns (a /proc/PID/ns/net). It dials on a thread of its
// own that enters ns and is never given back to the runtime (it exits
// with the goroutine), so no other goroutine runs in that namespace.
func dialInNetns(ns, src, addr string, n int) ([]net.Conn, error) {
	type result struct {
		conns []net.Conn
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		var r result
		defer func() { ch <- r }()
		fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			r.err = err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			r.err = fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		// A literal address: one socket, made on this thread.
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		for range n {
			nc, err := dl.Dial("tcp", addr)
			if err != nil {
				r.err = err
				return
			}
			r.conns = append(r.conns, nc)
		}
	}()
	r := <-ch
	if r.err != nil {
		for _, nc := range r.conns {
			nc.Close()
		}
	}
	return r.conns, r.err
}
