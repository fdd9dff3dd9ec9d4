package mem

import "runtime"

// Fault is the panic value a load or store on a mapping the front-end no
// longer backs (it shrank the shared file) carries on a goroutine that set
// debug.SetPanicOnFault: a runtime.Error with the faulting address.
type Fault interface {
	runtime.Error
	Addr() uintptr
}

// AsFault returns p (a recovered panic value) as a Fault, or nil if p is
// another panic (a bug, which the caller re-raises).
func AsFault(p any) Fault {
	if f, ok := p.(Fault); ok {
		return f
	}
	return nil
}
