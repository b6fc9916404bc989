//go:build linux

package sockio

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller reports sockets that have bytes to read or that the client has
// hung up on, without a goroutine per socket: each watched socket is also
// registered in an epoll set of the Poller's own, which one goroutine
// (Run) waits on. (Go's runtime keeps its own epoll set for the same
// descriptors; a descriptor may be in several.) A socket is reported once,
// then not again until it is re-armed. Events carry a serial number rather
// than the descriptor, so an event that arrives after a descriptor was
// closed and reused is ignored. T is what the transport reports a socket
// as (its connection). golang.org/x/sys/unix is the Go team's own binding
// of these system calls. A nil Poller watches nothing; its methods are
// safe for concurrent use.
type Poller[T any] struct {
	epfd   int
	wake   int // an eventfd, registered under key 0, that stops Run
	events uint32
	serial atomic.Uint64

	mu    sync.Mutex
	byKey map[uint64]T
}

// NewPoller returns a Poller that reports what: HangUp or Readable. It
// returns nil where epoll is not to be had.
func NewPoller[T any](what Events) *Poller[T] {
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
	events := uint32(unix.EPOLLRDHUP | unix.EPOLLONESHOT)
	if what == Readable {
		events |= unix.EPOLLIN
	}
	return &Poller[T]{epfd: epfd, wake: wake, events: events, byKey: make(map[uint64]T)}
}

// The 64 bits of epoll_data follow Events in unix.EpollEvent (as Fd and
// Pad on every Linux port).
func setKey(ev *unix.EpollEvent, key uint64) { *(*uint64)(unsafe.Pointer(&ev.Fd)) = key }
func getKey(ev *unix.EpollEvent) uint64      { return *(*uint64)(unsafe.Pointer(&ev.Fd)) }

// Watch registers c's socket, to be reported as v, armed for one report
// when armed is set (else once Rearm is called); it reports false when it
// cannot (the socket is then found by other means: writes, or a reading
// goroutine). Forget must be called before c is closed.
func (p *Poller[T]) Watch(v T, c *Conn, armed bool) bool {
	if p == nil || c.raw == nil {
		return false
	}
	key := p.serial.Add(1)
	c.watchKey.Store(key) // before the registration, which may fire at once
	p.mu.Lock()
	p.byKey[key] = v
	p.mu.Unlock()
	var events uint32
	if armed {
		events = p.events
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

// Rearm asks for c's next report.
func (p *Poller[T]) Rearm(c *Conn) {
	key := c.watchKey.Load()
	if p == nil || key == 0 {
		return
	}
	_ = c.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: p.events}
		setKey(&ev, key)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
}

// Forget stops watching c; call it before c is closed.
func (p *Poller[T]) Forget(c *Conn) {
	key := c.watchKey.Swap(0)
	if p == nil || key == 0 {
		return
	}
	p.mu.Lock()
	delete(p.byKey, key)
	p.mu.Unlock()
	_ = c.raw.Control(func(fd uintptr) { _ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}

// Run hands every socket reported to ready, in turn, until Stop; then it
// closes the epoll set. ready may call Forget and Rearm.
func (p *Poller[T]) Run(ready func(T)) {
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
			v, ok := p.byKey[key]
			p.mu.Unlock()
			if ok {
				ready(v)
			}
		}
	}
}

// Stop makes Run return.
func (p *Poller[T]) Stop() {
	if p == nil {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}
