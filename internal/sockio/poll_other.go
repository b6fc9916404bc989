//go:build !linux

package sockio

// Poller needs epoll; elsewhere NewPoller returns nil, which watches
// nothing: a transport then finds hung-up clients by its writes
// (heartbeats) and reads each connection in a goroutine of its own.
type Poller[T any] struct{}

func NewPoller[T any](what Events) *Poller[T]            { return nil }
func (p *Poller[T]) Watch(v T, c *Conn, armed bool) bool { return false }
func (p *Poller[T]) Rearm(c *Conn)                       {}
func (p *Poller[T]) Forget(c *Conn)                      {}
func (p *Poller[T]) Run(ready func(T))                   {}
func (p *Poller[T]) Stop()                               {}
