package virtiofs

// AdaptivePollers is how many workers of the process hold an adaptive
// poll turn now (adaptivePollers), for tests that check none is lost.
func AdaptivePollers() int32 { return adaptivePollers.Load() }
