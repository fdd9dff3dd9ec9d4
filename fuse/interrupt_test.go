package fuse

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// TestWaitingLock: only SETLKW for a read or write lock may wait; its
// unlock (F_SETLKW with F_UNLCK, flock's LOCK_UN), SETLK and a body too
// short to say do not.
func TestWaitingLock(t *testing.T) {
	body := func(typ uint32) []byte {
		b := make([]byte, abi.LkInSize)
		binary.NativeEndian.PutUint32(b[32:], typ)
		return b
	}
	for _, c := range []struct {
		name string
		op   abi.Opcode
		body []byte
		want bool
	}{
		{"setlkw write", abi.OpSetlkw, body(unix.F_WRLCK), true},
		{"setlkw read", abi.OpSetlkw, body(unix.F_RDLCK), true},
		{"setlkw unlock", abi.OpSetlkw, body(unix.F_UNLCK), false},
		{"setlk write", abi.OpSetlk, body(unix.F_WRLCK), false},
		{"short", abi.OpSetlkw, body(unix.F_WRLCK)[:20], false},
		{"fsync", abi.OpFsync, body(unix.F_WRLCK), false},
	} {
		if got := WaitingLock(c.op, c.body); got != c.want {
			t.Errorf("%s: WaitingLock = %v, want %v", c.name, got, c.want)
		}
	}
}
