//go:build !unix

package bench

func cpuSeconds() float64 { return 0 }

// RaiseFileLimit does nothing here.
func RaiseFileLimit() {}

// FileLimit reports an unknown limit as 0.
func FileLimit() uint64 { return 0 }
