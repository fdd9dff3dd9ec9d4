package ring_test

import (
	"context"
	"fmt"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// A queue worker: it enters the live guest memory once per batch, follows
// memory updates, pops chains, completes them, publishes once, and exits
// the read side before it would block waiting for a kick.
func Example_worker() {
	// The "guest": memory, a ring, two requests.
	g, _ := ringtest.NewGuest(16, ring.FeatureVersion1|ring.FeatureEventIdx|ring.FeatureIndirectDesc, 1<<16, false)
	driver, _ := ringtest.NewDriver(g.Table, g.Config)
	copy(driver.Mem(g.Data, 5), "hello")
	driver.Add([]ringtest.Buf{{Addr: g.Data, Len: 5}, {Addr: g.Data + 4096, Len: 64, Write: true}})
	driver.Add([]ringtest.Buf{{Addr: g.Data, Len: 2}, {Addr: 1 << 50, Len: 64, Write: true}}) // bad address
	driver.Kick()

	// The back-end: SET_MEM_TABLE, SET_VRING_* → Memory and Queue.
	m := mem.NewMemory()
	m.SetRegions(context.Background(), []*mem.Region{g.Region})
	q, err := ring.New(m.Table(), g.Config)
	if err != nil {
		fmt.Println(err)
		return
	}
	reader := m.NewReader()
	defer reader.Close()

	var c ring.Chain
	var req [64]byte
	t := reader.Enter() // online: views of t stay mapped
	if err := q.SetMemory(t); err != nil {
		fmt.Println("rings left guest memory:", err) // stop the queue
		return
	}
	for {
		ok, err := q.Pop(&c)
		if !ok {
			if err != nil {
				fmt.Println("ring broken:", err) // stop the queue
			}
			break
		}
		if err != nil {
			fmt.Println("bad chain:", err)
			q.Push(c.Head, 0) // fail this request only
			continue
		}
		n := c.ReadAt(req[:], 0)
		w := c.WriteAt([]byte(fmt.Sprintf("got %q", req[:n])), 0)
		q.Push(c.Head, uint32(w))
	}
	if q.Publish() {
		fmt.Println("signal the call eventfd")
	}
	pending := q.EnableNotify()
	reader.Exit() // quiescent: no views held; now it may block on the kick fd
	fmt.Println("pending:", pending)

	id, n, _ := driver.Used()
	fmt.Printf("used %d: %s\n", id, driver.Mem(g.Data+4096, uint64(n)))
	id, n, _ = driver.Used()
	fmt.Printf("used %d: %d bytes\n", id, n)
	m.Close(context.Background())
	// Output:
	// bad chain: ring: descriptor buffer outside guest memory
	// signal the call eventfd
	// pending: false
	// used 0: got "hello"
	// used 2: 0 bytes
}
