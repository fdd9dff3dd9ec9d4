package vhostuser

import (
	"encoding/binary"
	"errors"
	"testing"
)

func msg(req Request, flags uint32, payload []byte) []byte {
	b := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(b[0:], uint32(req))
	binary.LittleEndian.PutUint32(b[4:], flags|VHOST_USER_VERSION)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[headerSize:], payload)
	return b
}

func u64p(v uint64) []byte { b := make([]byte, 8); binary.LittleEndian.PutUint64(b, v); return b }

func state(i, n uint32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, i)
	binary.LittleEndian.PutUint32(b[4:], n)
	return b
}

func memTable(regs ...Region) []byte {
	b := make([]byte, memTableHdrSize+regionSize*len(regs))
	binary.LittleEndian.PutUint32(b, uint32(len(regs)))
	for i, r := range regs {
		r.put(b[memTableHdrSize+regionSize*i:])
	}
	return b
}

func memReg(r Region) []byte {
	b := make([]byte, memRegMsgSize)
	r.put(b[8:])
	return b
}

func config(off, size, flags uint32) []byte {
	b := make([]byte, configHdrSize+int(size))
	binary.LittleEndian.PutUint32(b, off)
	binary.LittleEndian.PutUint32(b[4:], size)
	binary.LittleEndian.PutUint32(b[8:], flags)
	return b
}

var reg0 = Region{GuestAddr: 0, Size: 1 << 20, UserAddr: 0x7f0000000000, MmapOffset: 0}
var reg1 = Region{GuestAddr: 1 << 20, Size: 1 << 20, UserAddr: 0x7f0000100000, MmapOffset: 0}

func TestDecodeMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		nfds int
		ok   bool
	}{
		{"get features", msg(VHOST_USER_GET_FEATURES, 0, nil), 0, true},
		{"get features with payload", msg(VHOST_USER_GET_FEATURES, 0, u64p(0)), 0, false},
		{"get features with fd", msg(VHOST_USER_GET_FEATURES, 0, nil), 1, false},
		{"short header", msg(VHOST_USER_GET_FEATURES, 0, nil)[:11], 0, false},
		{"version 0", func() []byte { b := msg(1, 0, nil); b[4] = 0; return b }(), 0, false},
		{"reply flag", msg(VHOST_USER_GET_FEATURES, VHOST_USER_REPLY_MASK, nil), 0, false},
		{"unknown flag", msg(VHOST_USER_GET_FEATURES, 0x100, nil), 0, false},
		{"size mismatch", func() []byte { b := msg(2, 0, u64p(1)); b[8] = 9; return b }(), 0, false},
		{"huge size", func() []byte { b := msg(2, 0, nil); binary.LittleEndian.PutUint32(b[8:], 1<<31); return b }(), 0, false},
		{"set features", msg(VHOST_USER_SET_FEATURES, VHOST_USER_NEED_REPLY, u64p(1<<32)), 0, true},
		{"set features short", msg(VHOST_USER_SET_FEATURES, 0, []byte{1, 2, 3, 4}), 0, false},
		{"vring num 256", msg(VHOST_USER_SET_VRING_NUM, 0, state(0, 256)), 0, true},
		{"vring num 0", msg(VHOST_USER_SET_VRING_NUM, 0, state(0, 0)), 0, false},
		{"vring num 3", msg(VHOST_USER_SET_VRING_NUM, 0, state(0, 3)), 0, false},
		{"vring num 65536", msg(VHOST_USER_SET_VRING_NUM, 0, state(0, 65536)), 0, false},
		{"vring addr short", msg(VHOST_USER_SET_VRING_ADDR, 0, make([]byte, 32)), 0, false},
		{"kick with fd", msg(VHOST_USER_SET_VRING_KICK, 0, u64p(1)), 1, true},
		{"kick no fd bit", msg(VHOST_USER_SET_VRING_KICK, 0, u64p(1|1<<8)), 0, true},
		{"kick missing fd", msg(VHOST_USER_SET_VRING_KICK, 0, u64p(1)), 0, false},
		{"kick fd and no-fd bit", msg(VHOST_USER_SET_VRING_KICK, 0, u64p(1|1<<8)), 1, false},
		{"kick two fds", msg(VHOST_USER_SET_VRING_KICK, 0, u64p(0)), 2, false},
		{"call junk bits", msg(VHOST_USER_SET_VRING_CALL, 0, u64p(1<<9)), 1, false},
		{"mem table", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(reg0, reg1)), 2, true},
		{"mem table fd count", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(reg0, reg1)), 1, false},
		{"mem table 0 regions", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable()), 0, false},
		{"mem table 9 regions", func() []byte {
			b := memTable(reg0)
			binary.LittleEndian.PutUint32(b, 9)
			return msg(VHOST_USER_SET_MEM_TABLE, 0, b)
		}(), 8, false},
		{"mem table overlap", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(reg0, reg0)), 2, false},
		{"mem table wrap", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(Region{GuestAddr: ^uint64(0) - 5, Size: 10})), 1, false},
		{"mem table empty region", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(Region{})), 1, false},
		{"mem table truncated", msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(reg0, reg1)[:40]), 2, false},
		{"add mem reg", msg(VHOST_USER_ADD_MEM_REG, 0, memReg(reg0)), 1, true},
		{"add mem reg no fd", msg(VHOST_USER_ADD_MEM_REG, 0, memReg(reg0)), 0, false},
		{"rem mem reg", msg(VHOST_USER_REM_MEM_REG, 0, memReg(reg0)), 0, true},
		{"backend req fd", msg(VHOST_USER_SET_BACKEND_REQ_FD, 0, nil), 1, true},
		{"backend req no fd", msg(VHOST_USER_SET_BACKEND_REQ_FD, 0, nil), 0, false},
		{"get config", msg(VHOST_USER_GET_CONFIG, 0, config(0, 40, 0)), 0, true},
		{"get config size 0", msg(VHOST_USER_GET_CONFIG, 0, config(0, 0, 0)), 0, false},
		{"get config too big", msg(VHOST_USER_GET_CONFIG, 0, config(250, 10, 0)), 0, false},
		{"get config bad flags", msg(VHOST_USER_GET_CONFIG, 0, config(0, 4, 7)), 0, false},
		{"unknown request", msg(99, 0, make([]byte, 17)), 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage(tc.b, tc.nfds)
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeMessage = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error %v does not match ErrInvalidMessage", err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	u := unsupported(VHOST_USER_SET_LOG_BASE, "x")
	if !errors.Is(u, ErrUnsupported) || !errors.Is(u, ErrInvalidMessage) {
		t.Errorf("unsupported error %v does not match both sentinels", u)
	}
	if i := invalid(VHOST_USER_SET_VRING_NUM, "x"); errors.Is(i, ErrUnsupported) {
		t.Errorf("invalid matches ErrUnsupported")
	}
	c := &ConnError{Err: ErrClosed}
	if !errors.Is(c, ErrClosed) || errors.Is(c, ErrDisconnected) {
		t.Errorf("ConnError sentinels wrong")
	}
	if got := VHOST_USER_GET_VRING_BASE.String(); got != "GET_VRING_BASE" {
		t.Errorf("String = %q", got)
	}
	if got := Request(1234).String(); got != "REQUEST_1234" {
		t.Errorf("String = %q", got)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(msg(VHOST_USER_GET_FEATURES, 0, nil), 0)
	f.Add(msg(VHOST_USER_SET_FEATURES, 0, u64p(1<<32|1<<30)), 0)
	f.Add(msg(VHOST_USER_SET_MEM_TABLE, VHOST_USER_NEED_REPLY, memTable(reg0, reg1)), 2)
	f.Add(msg(VHOST_USER_ADD_MEM_REG, 0, memReg(reg0)), 1)
	f.Add(msg(VHOST_USER_SET_VRING_NUM, 0, state(1, 1024)), 0)
	f.Add(msg(VHOST_USER_SET_VRING_ADDR, 0, make([]byte, vringAddrSize)), 0)
	f.Add(msg(VHOST_USER_SET_VRING_KICK, 0, u64p(1)), 1)
	f.Add(msg(VHOST_USER_GET_CONFIG, 0, config(0, 40, 0)), 0)
	f.Add(msg(VHOST_USER_SET_STATUS, 0, u64p(15)), 0)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		if nfds < 0 || nfds > maxFds+1 {
			return
		}
		h, err := DecodeMessage(b, nfds)
		if err == nil {
			// Accepted: the framing must be exactly what it claims.
			if len(b) != headerSize+int(h.Size) || h.Size > maxPayload {
				t.Fatalf("accepted %d bytes with size %d", len(b), h.Size)
			}
			if int(h.Request) < len(specs) && specs[h.Request].known {
				s := specs[h.Request]
				if nfds < s.minFds || nfds > s.maxFds || s.size >= 0 && int(h.Size) != s.size {
					t.Fatalf("accepted %v with size %d and %d fds", h.Request, h.Size, nfds)
				}
			}
			return
		}
		if !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("error %v is not ErrInvalidMessage", err)
		}
	})
}
