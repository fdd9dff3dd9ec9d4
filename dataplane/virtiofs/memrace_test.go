package virtiofs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
	"golang.org/x/sys/unix"
)

// TestMemoryTableRaces plays a front-end that changes the memory table
// under the requests it has in flight: the region holding the request
// buffers (not the rings) is removed and added back, replaced by a smaller
// one with SET_MEM_TABLE, and removed then re-added smaller with
// REM/ADD_MEM_REG, while 128 KiB READs (the reply written into guest
// memory) and WRITEs (the payload read out of it) run on queue 1 — inline
// and on helpers. The back-end unmaps a dropped region only once no worker
// or helper can hold a view of it (mem's grace period); if it did not,
// this test would die of SIGSEGV or see a completed READ without its data.
// Every request must complete: with its reply (data checked) or refused
// (used length 0, its buffers were outside guest memory when popped). And
// once a shrink is acknowledged, a READ into the part cut off (queue 2)
// must be refused without touching it.
func TestMemoryTableRaces(t *testing.T) {
	for _, helpers := range []int{0, 2} {
		t.Run(fmt.Sprintf("helpers=%d", helpers), func(t *testing.T) {
			memoryTableRaces(t, helpers)
		})
	}
}

func memoryTableRaces(t *testing.T, helpers int) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "m", RequestQueues: 2, Helpers: helpers})
	g := d.guest(vt.GuestConfig{DataLen: 1 << 20})
	node, fh := session(t, g, "f")
	const size = 128 << 10
	content := pattern(size, 9)
	if err := os.WriteFile(filepath.Join(d.dir, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	q1, q2 := g.Queues[1], g.Queues[2]
	// The back-end's view of the guest's one memfd, in two regions: A
	// holds the rings (and hiprio's data), B queue 1's and queue 2's data.
	// Bsmall is B without queue 2's area.
	r0, fd := g.Mem.Regions[0], int(g.Mem.Files[0].Fd())
	split := q1.Data
	a := vt.Region{GuestAddr: 0, Size: split, UserAddr: r0.UserAddr}
	b := vt.Region{GuestAddr: split, Size: r0.Size - split, UserAddr: r0.UserAddr + split, MmapOffset: split}
	bSmall := b
	bSmall.Size = q2.Data - split
	if err := g.F.SetMemTable([]vt.Region{a, b}, []int{fd, fd}); err != nil {
		t.Fatal(err)
	}
	call(t, q1, getattrReq(node)) // the rings survived the split

	stop := make(chan struct{})
	var served, refused, errReplies atomic.Int64
	loadErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var req vt.Buffers
			if i%2 == 0 {
				req = readReq(node, fh, 0, size, 4)
			} else {
				req = writeReq(node, fh, 0, content, 4)
			}
			out, err := q1.Submit(req)
			if err != nil {
				loadErr <- fmt.Errorf("request %d: %w (every request must complete)", i, err)
				return
			}
			if len(out) == 0 {
				refused.Add(1)
				continue
			}
			var h abi.OutHeader
			if !h.Unmarshal(out) || int(h.Len) != len(out) {
				loadErr <- fmt.Errorf("request %d: malformed reply %x", i, out[:min(len(out), 32)])
				return
			}
			if h.Error != 0 {
				errReplies.Add(1)
				continue
			}
			if i%2 == 0 && !bytes.Equal(out[abi.OutHeaderSize:], content) {
				loadErr <- fmt.Errorf("request %d: READ answered success with %d bytes that are not the file's", i, len(out)-abi.OutHeaderSize)
				return
			}
			served.Add(1)
		}
	}()

	// probe: with Bsmall in place, a READ into queue 2's area (cut off) is
	// refused and the area stays as the driver left it.
	probe := func(round int) error {
		req := readReq(node, fh, 0, 4096, 1)
		canary := q2.Mem(q2.Data, 64<<10)
		for i := range canary {
			canary[i] = 0xa5
		}
		head, err := q2.Add(req)
		if err != nil {
			return err
		}
		// Add cleared the reply buffer; mark it again.
		for i := range canary {
			canary[i] = 0xa5
		}
		q2.Kick()
		id, n, err := q2.Wait()
		if err != nil || id != head {
			return fmt.Errorf("round %d: probe completion id %d (want %d): %v", round, id, head, err)
		}
		if n != 0 {
			return fmt.Errorf("round %d: a READ into memory the front-end removed completed with %d bytes", round, n)
		}
		for i, c := range canary {
			if c != 0xa5 {
				return fmt.Errorf("round %d: byte %d of the removed area was written (%#x)", round, i, c)
			}
		}
		return nil
	}

	deadline := time.Now().Add(4 * time.Second)
	rounds := 0
	for ; rounds < 300 && time.Now().Before(deadline); rounds++ {
		var err error
		switch rounds % 3 {
		case 0: // remove the data region, add it back
			if err = g.F.RemMemReg(b); err == nil {
				err = g.F.AddMemReg(b, fd)
			}
		case 1: // replace the table with one whose data region is smaller
			if err = g.F.SetMemTable([]vt.Region{a, bSmall}, []int{fd, fd}); err == nil {
				if err = probe(rounds); err == nil {
					err = g.F.SetMemTable([]vt.Region{a, b}, []int{fd, fd})
				}
			}
		case 2: // remove it, add a smaller one, then the whole one again
			if err = g.F.RemMemReg(b); err == nil {
				if err = g.F.AddMemReg(bSmall, fd); err == nil {
					if err = probe(rounds); err == nil {
						if err = g.F.RemMemReg(bSmall); err == nil {
							err = g.F.AddMemReg(b, fd)
						}
					}
				}
			}
		}
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("round %d: %v", rounds, err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-loadErr:
		t.Fatal(err)
	default:
	}
	t.Logf("%d memory rounds; %d requests served, %d refused (buffers outside memory), %d error replies",
		rounds, served.Load(), refused.Load(), errReplies.Load())
	if served.Load() < 20 {
		t.Fatalf("only %d requests served across %d memory rounds", served.Load(), rounds)
	}
	if refused.Load() == 0 {
		t.Logf("no request caught the data region removed (the race was not hit this run)")
	}
	// Nothing else broke: the session serves, the file holds what was written.
	call(t, q1, getattrReq(node))
	got, err := os.ReadFile(filepath.Join(d.dir, "f"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("file after the run: %d bytes, %v (want the %d bytes written)", len(got), err, len(content))
	}
	if s := d.log.String(); strings.Contains(s, "internal error") || strings.Contains(s, "no longer backs") {
		t.Fatalf("the back-end logged a fault:\n%s", s)
	}
}

// TestFullCallEventfd: a front-end passes as a queue's call notifier a
// blocking eventfd whose counter it set to the maximum, so a write of 1
// blocks for ever. The worker used to block in that write on its first
// completion, and GET_VRING_BASE (which waits for the worker) never came
// back: the session and the device were stuck for good. vhostuser makes
// notifiers non-blocking; the worker serves on and stops when asked.
func TestFullCallEventfd(t *testing.T) {
	d := newDaemon(t, 1)
	g := d.guest(vt.GuestConfig{})
	node, _ := session(t, g, "f")
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, vt.U64(0xfffffffffffffffe)); err != nil {
		t.Fatal(err)
	}
	if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_CALL, 1, fd); err != nil {
		t.Fatal(err)
	}
	g.LaxInterrupts = true // the interrupt is lost to the full counter: the front-end's doing
	for range 3 {
		call(t, g.Queues[1], getattrReq(node))
	}
	g.F.Conn().SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := g.Stop(); err != nil {
		t.Fatalf("GET_VRING_BASE after completions on a full call eventfd: %v", err)
	}
}
