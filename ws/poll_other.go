//go:build !linux

package ws

// poller needs epoll; elsewhere each connection is read by a goroutine of
// its own.
type poller struct{}

func newPoller() *poller                 { return nil }
func (p *poller) watch(*conn, bool) bool { return false }
func (p *poller) rearm(*conn)            {}
func (p *poller) forget(*conn)           {}
func (p *poller) run(ready func(*conn))  {}
func (p *poller) stop()                  {}
