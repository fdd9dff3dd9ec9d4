package dos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/p9"
)

// p9OpenLock is the "p9openlock ADDR N" role: over one unix connection,
// as itself, walk to "f" and Tlopen it, then Tlock a byte of it as a new
// lock owner (ProcID, ClientID), N times or until a request fails; say
// "opened K locked L ERR" (ERR the errno that stopped it, or "none") and
// hold everything until it is killed.
func p9OpenLock(addr, count string) int {
	n, _ := strconv.Atoi(count)
	nc, err := net.DialTimeout("unix", addr, 5*time.Second)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	// No *testing.T in the child: send would call its Fatal only for a
	// message that does not encode, and these all do.
	c := &p9Client{nc: nc, msize: 8192}
	rpc := func(m p9.Message) (p9.Message, error) {
		rm, err := c.call(m)
		var e syscall.Errno
		if errors.As(err, &e) {
			return nil, e // the errno alone: the report names it
		}
		return rm, err
	}
	for _, m := range []p9.Message{
		&p9.Tversion{Msize: 8192, Version: []byte(p9.Version)},
		&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: uint32(os.Getuid()), Aname: []byte{}},
	} {
		if _, err := rpc(m); err != nil {
			fmt.Println(m.Type(), err)
			return 1
		}
	}
	opened, locked, stop := 0, 0, "none"
	fail := func(err error) { stop = err.Error() }
	for i := range n {
		fid := uint32(10 + i)
		if _, err := rpc(&p9.Twalk{Fid: 1, Newfid: fid, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("f")}}); err != nil {
			fail(err)
			break
		}
		if _, err := rpc(&p9.Tlopen{Fid: fid, Flags: p9.DotlRdonly}); err != nil {
			fail(err)
			break
		}
		opened++
		rm, err := rpc(&p9.Tlock{Fid: fid, LockType: p9.LockTypeRdlck, Start: uint64(i), Length: 1, ProcID: uint32(i + 1), ClientID: []byte("hostile")})
		if err != nil {
			fail(err)
			break
		}
		if rl := rm.(*p9.Rlock); rl.Status != p9.LockSuccess {
			stop = fmt.Sprintf("lock status %d", rl.Status)
			break
		}
		locked++
	}
	fmt.Println("opened", opened, "locked", locked, strconv.Quote(stop))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startP9OpenLock runs the p9openlock role as uid 65534 and returns its
// report and the process, which the caller kills.
func startP9OpenLock(t *testing.T, self, addr string, n int) (opened, locked int, stop string, cmd *exec.Cmd) {
	t.Helper()
	cmd = asNobody("/", self, addr, strconv.Itoa(n))
	// The child holds what it took until it is killed: stdin stays open.
	_, out := startChild(t, cmd, "p9openlock")
	l, _ := out.ReadString('\n')
	if _, err := fmt.Sscanf(l, "opened %d locked %d %q", &opened, &locked, &stop); err != nil {
		t.Fatalf("p9openlock child: %q", l)
	}
	return opened, locked, stop, cmd
}

// TestP9OpenBudgetDisconnect: the open-files budget on the 9P door, and
// what an abrupt disconnect gives back. uid 65534 opens one file and
// takes a lock as a new owner through each open fid, over one
// connection, until the daemon refuses: its opens and lock owners
// together reach --max-open-per-uid (each holds a host fd) and no more,
// with EMFILE or ENOLCK. Then it is killed without clunking anything: the
// daemon's fds come back to where they were, and the next connection of
// the same uid gets the whole budget again.
func TestP9OpenBudgetDisconnect(t *testing.T) {
	const budget = 100
	d, addr := start9pOn(t, "unix", "--max-open-per-uid", strconv.Itoa(budget))
	self := childBinary(t)
	// Warm up: one open and lock, then a drop, so that base counts what
	// stays by design (the inode fd cache holds "f", the mount fd that
	// reopens handles).
	_, _, _, warm := startP9OpenLock(t, self, addr, 1)
	warm.Process.Kill()
	warm.Wait()
	time.Sleep(500 * time.Millisecond)
	base := d.fds()

	opened, locked, stop, cmd := startP9OpenLock(t, self, addr, 10*budget)
	t.Logf("uid %d: %d opens and %d lock owners, then %s", nobody, opened, locked, stop)
	if opened+locked != budget || (stop != syscall.EMFILE.Error() && stop != syscall.ENOLCK.Error()) {
		t.Errorf("uid %d held %d opens + %d lock owners, stopped by %q; want %d in all, then EMFILE or ENOLCK", nobody, opened, locked, stop, budget)
	}
	// A handle holds its fd and, with file handles, its inode's; an owner one fd.
	checkBounds(t, "uid 65534 at its budget", d, base+2*budget+32, 256<<20)

	cmd.Process.Kill()
	cmd.Wait()
	var fds int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if fds = d.fds(); fds <= base+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // no event tells the connection's teardown is done
	}
	if fds > base+2 {
		t.Errorf("after uid %d's connection dropped: fastfsd holds %d fds, %d before the attack", nobody, fds, base)
	}
	opened2, locked2, stop2, cmd2 := startP9OpenLock(t, self, addr, 10*budget)
	if opened2+locked2 != budget {
		t.Errorf("after the drop, uid %d's new connection held %d opens + %d lock owners (%s), want its budget %d back", nobody, opened2, locked2, stop2, budget)
	}
	cmd2.Process.Kill()
	cmd2.Wait()
}
