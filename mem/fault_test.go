package mem

import (
	"errors"
	"testing"
)

type fakeFault struct{}

func (fakeFault) Error() string { return "fault" }
func (fakeFault) RuntimeError() {}
func (fakeFault) Addr() uintptr { return 0x1000 }

type addrOnly struct{}

func (addrOnly) Addr() uintptr { return 0x1000 }

// TestAsFault: only a runtime error with an address is a fault; any other
// panic value (a bug) is not.
func TestAsFault(t *testing.T) {
	if f := AsFault(fakeFault{}); f == nil || f.Addr() != 0x1000 {
		t.Fatalf("AsFault(runtime error with Addr) = %v", f)
	}
	for _, p := range []any{"boom", errors.New("boom"), addrOnly{}, nil} {
		if AsFault(p) != nil {
			t.Errorf("AsFault(%#v) is a fault", p)
		}
	}
}
