//go:build linux

package ws

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller tells which connections have bytes to read, without a goroutine
// per connection: every connection's socket is also registered in an
// epoll set of the handler's own (Go's runtime keeps its own set for the
// same descriptors; a descriptor may be in several), for readability and
// hang-up, one shot at a time, and one goroutine waits on it. A read turn
// re-arms its connection when it has read what was there. Events carry a
// serial number rather than the descriptor, so an event that arrives after
// a descriptor was closed and reused is ignored. golang.org/x/sys/unix is
// the Go team's own binding of these system calls.
type poller struct {
	epfd   int
	wake   int // an eventfd, registered under key 0, that stops run
	serial atomic.Uint64

	mu    sync.Mutex
	byKey map[uint64]*conn
}

const readable = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller() *poller {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setKey(&ev, 0)
	if unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev) != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil
	}
	return &poller{epfd: epfd, wake: wake, byKey: make(map[uint64]*conn)}
}

// The 64 bits of epoll_data follow Events in unix.EpollEvent (as Fd and
// Pad on every Linux port).
func setKey(ev *unix.EpollEvent, key uint64) { *(*uint64)(unsafe.Pointer(&ev.Fd)) = key }
func getKey(ev *unix.EpollEvent) uint64      { return *(*uint64)(unsafe.Pointer(&ev.Fd)) }

// watch registers c's socket, armed for one readiness event when armed is
// set; it reports false when it cannot (the caller then reads in a
// goroutine).
func (p *poller) watch(c *conn, armed bool) bool {
	if p == nil || c.raw == nil {
		return false
	}
	key := p.serial.Add(1)
	c.watchKey.Store(key) // before the registration, which may fire at once
	p.mu.Lock()
	p.byKey[key] = c
	p.mu.Unlock()
	var events uint32
	if armed {
		events = readable
	}
	var cerr error
	err := c.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: events}
		setKey(&ev, key)
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		c.watchKey.Store(0)
		p.mu.Lock()
		delete(p.byKey, key)
		p.mu.Unlock()
		return false
	}
	return true
}

// rearm asks for c's next readiness event.
func (p *poller) rearm(c *conn) {
	key := c.watchKey.Load()
	if p == nil || key == 0 {
		return
	}
	_ = c.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: readable}
		setKey(&ev, key)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
}

// forget stops watching c; call it before its socket is closed.
func (p *poller) forget(c *conn) {
	key := c.watchKey.Swap(0)
	if p == nil || key == 0 {
		return
	}
	p.mu.Lock()
	delete(p.byKey, key)
	p.mu.Unlock()
	_ = c.raw.Control(func(fd uintptr) { _ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}

// run hands every connection with bytes to read (or hung up) to ready,
// until stop.
func (p *poller) run(ready func(*conn)) {
	defer unix.Close(p.epfd)
	defer unix.Close(p.wake)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for i := range events[:n] {
			key := getKey(&events[i])
			if key == 0 {
				return
			}
			p.mu.Lock()
			c := p.byKey[key]
			p.mu.Unlock()
			if c != nil {
				ready(c)
			}
		}
	}
}

// stop makes run return.
func (p *poller) stop() {
	if p == nil {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}
