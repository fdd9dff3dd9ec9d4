package p9

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Requests that would wait (an open, a Tlcreate of an existing name or a
// truncating Tsetattr that must break a lease another process holds on
// the host file: fcntl F_SETLEASE, up to /proc/sys/fs/lease-break-time,
// 45 s by default) never wait on a connection's workers. A worker serves
// every request with fs.Context.NoWait; a filesystem that would have to
// wait returns fs.WouldWait having changed nothing, and the worker hands
// the request to a goroutine of its own (wait), outside the MaxRequests
// workers, which serves it again with NoWait false and writes its reply.
// The worker goes on with the next request. A waiting request stays in
// the connection's in-flight table, so a Tflush naming it, a Tversion, a
// Shutdown (at once: it is not work to finish) and the connection's end
// interrupt it (fs.Interrupt: the wait ends with EINTR, Rlerror to the
// client). The fid a waiting Tlopen or Tlcreate opens is not locked
// meanwhile (fidOpening, fid.go): other requests on it are served or
// refused at once, and a Tclunk or Tremove of it interrupts the wait.
//
// The waits of one connection are bounded (waitshare.Counter, the rule
// every FUSE door applies to its waits): at most
// MaxRequests at once, one uid other than 0 at most an eighth of them (at
// least 1), and an eighth kept for root. Past that the request is answered
// EAGAIN at once (the caller's open(2) fails with EAGAIN; it may try
// again). A waiting request keeps only its small message buffers: its
// slot's larger ones go to the replacement slot the worker's pool gets
// (handOff), so the connection's buffer bound (MaxRequests+readAhead
// slots of up to 2×msize each) holds as before, plus at most MaxRequests
// small waiting requests.

// smallBuf is the largest buffer a waiting request keeps (handOff).
const smallBuf = 1024

// handOff makes r, which a worker served with NoWait and the filesystem
// answered fs.WouldWait, a waiting request served by a goroutine of its
// own (wait), or reports false if c's wait bounds refuse it (the worker
// answers EAGAIN). r leaves the slot pool: a new slot takes its place
// there, with r's reply buffer and a large body buffer (r keeps a copy of
// its body), and r is dropped once its reply is written (reply).
//
// Preconditions: r is the calling worker's; r.ctx.Uid is the caller's
// (the handler set it).
func (c *conn) handOff(r *request) bool {
	uid := r.ctx.Uid
	if !c.waits.Take(uid) {
		return false
	}
	nr := c.newRequest()
	nr.out, r.out = r.out[:0], nil
	if cap(r.in) > smallBuf {
		nr.in, r.in = r.in[:0], append([]byte(nil), r.in...)
	}
	c.mu.Lock()
	r.waiting = true
	c.mu.Unlock()
	c.free <- nr // never blocks: r left the pool, nr takes its place
	go c.wait(r, uid)
	return true
}

// wait serves a handed-off request again, allowed to wait (NoWait
// false), and writes its reply; Tflush, Tversion and the connection's
// end interrupt it through r.intr.
func (c *conn) wait(r *request, uid uint32) {
	defer c.waits.Put(uid)
	obs := c.s.takeCounter()
	defer c.s.giveCounter(obs)
	t0 := now(obs)
	r.ctx.NoWait = false
	e := c.call(r)
	if e == fs.WouldWait {
		e = syscall.EIO // the filesystem broke the contract: WouldWait only with NoWait
	}
	c.complete(r, e, obs, t0)
}
