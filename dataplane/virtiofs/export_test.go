package virtiofs

import "time"

// AdaptivePollers is how many workers of the process hold an adaptive
// poll turn now (adaptivePollers), for tests that check none is lost.
func AdaptivePollers() int32 { return adaptivePollers.Load() }

// WithSpinPerRequest returns o with the adaptive window's budget per
// request served (spinPerRequest) set to d for the Device made from it, so
// that a paced test driver's gaps can be polled for.
func WithSpinPerRequest(o Options, d time.Duration) Options {
	o.spinPerRequest = d
	return o
}
