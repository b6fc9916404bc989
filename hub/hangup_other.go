//go:build !linux

package hub

// hangups needs epoll; elsewhere clients that leave are found by writes
// (heartbeats) alone.
type hangups struct{}

func newHangups() *hangups             { return nil }
func (w *hangups) watch(*sub)          {}
func (w *hangups) forget(*sub)         {}
func (w *hangups) run(gone func(*sub)) {}
func (w *hangups) stop()               {}
