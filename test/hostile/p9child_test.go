package hostile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/p9"
)

// p9Report is what the 9P child reports: for each step, "ok" or the
// errno (or error) it got.
type p9Report map[string]string

// p9Child (child role) connects to the 9P server at arg ("unix:PATH" or
// "tcp:HOST:PORT") and tries to act as root.
func p9Child(arg string) int {
	network, addr, _ := strings.Cut(arg, ":")
	rep := p9Report{}
	defer func() { json.NewEncoder(os.Stdout).Encode(rep) }()
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		rep["connect"] = err.Error()
		return 0
	}
	rep["connect"] = "ok"
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{nc: nc, msize: 65536}
	step := func(name string, m p9.Message) {
		rep[name] = c.rpc(m)
	}
	step("version", &p9.Tversion{Msize: 65536, Version: []byte(p9.Version)})
	step("attach-uid0", &p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: 0})
	step("attach-root", &p9.Tattach{Fid: 1, Afid: p9.NoFid, Uname: []byte("root"), NUname: p9.NoUid})
	step("attach-self", &p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: nobody})
	step("walk-pub", &p9.Twalk{Fid: 1, Newfid: 2, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("pub")}})
	step("create-gid0", &p9.Tlcreate{Fid: 2, Name: []byte("evil"), Flags: 2, Mode: 0o4755, Gid: 0})
	step("create-suid", &p9.Tlcreate{Fid: 2, Name: []byte("mine"), Flags: 2, Mode: 0o4755, Gid: nobody})
	step("chown-root", &p9.Tsetattr{Fid: 2, Valid: p9.SetAttrUID, UID: 0})
	step("walk-secret", &p9.Twalk{Fid: 1, Newfid: 3, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("secret")}})
	step("open-secret", &p9.Tlopen{Fid: 3, Flags: 2})
	step("chmod-secret", &p9.Tsetattr{Fid: 3, Valid: p9.SetAttrMode, Mode: 0o4777})
	step("walk-acl", &p9.Twalk{Fid: 1, Newfid: 4, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("acl")}})
	step("open-acl", &p9.Tlopen{Fid: 4, Flags: 2})
	return 0
}

type rawClient struct {
	nc    net.Conn
	msize uint32
}

// rpc sends m and returns "ok" or the Rlerror's errno name.
func (c *rawClient) rpc(m p9.Message) string {
	b, err := p9.Encode(nil, c.msize, 1, m)
	if err != nil {
		return "encode: " + err.Error()
	}
	if _, err := c.nc.Write(b); err != nil {
		return "write: " + err.Error()
	}
	var hb [4]byte
	if _, err := io.ReadFull(c.nc, hb[:]); err != nil {
		return "read: " + err.Error()
	}
	size := binary.LittleEndian.Uint32(hb[:])
	if size < p9.HeaderSize || size > c.msize {
		return fmt.Sprintf("reply size %d", size)
	}
	rb := make([]byte, size)
	copy(rb, hb[:])
	if _, err := io.ReadFull(c.nc, rb[4:]); err != nil {
		return "read: " + err.Error()
	}
	_, rm, err := p9.Decode(rb, c.msize)
	if err != nil {
		return "decode: " + err.Error()
	}
	if e, ok := rm.(*p9.Rlerror); ok {
		return syscall.Errno(e.Ecode).Error()
	}
	return "ok"
}
