//go:build linux

package hub

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hangups finds clients that have closed their end of a connection, at
// once and without a goroutine per connection: every connection is also
// registered, for EPOLLRDHUP only, in an epoll set of the hub's own, which
// one goroutine waits on. (Go's runtime keeps its own epoll set for the same
// descriptors; a descriptor may be in several.) Events carry a serial number
// rather than the descriptor, so an event that arrives after a descriptor
// was closed and reused is ignored. golang.org/x/sys/unix is the Go team's
// own binding of these system calls.
type hangups struct {
	epfd   int
	wake   int // an eventfd, registered under key 0, that stops run
	serial atomic.Uint64

	mu    sync.Mutex
	byKey map[uint64]*sub
}

func newHangups() *hangups {
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
	return &hangups{epfd: epfd, wake: wake, byKey: make(map[uint64]*sub)}
}

// The 64 bits of epoll_data follow Events in unix.EpollEvent (as Fd and
// Pad on every Linux port).
func setKey(ev *unix.EpollEvent, key uint64) { *(*uint64)(unsafe.Pointer(&ev.Fd)) = key }
func getKey(ev *unix.EpollEvent) uint64      { return *(*uint64)(unsafe.Pointer(&ev.Fd)) }

// watch registers s's connection. When it cannot, the connection is found
// by writes alone.
func (w *hangups) watch(s *sub) {
	if s.raw == nil {
		return
	}
	key := w.serial.Add(1)
	s.watchKey.Store(key) // before the registration, which may fire at once
	w.mu.Lock()
	w.byKey[key] = s
	w.mu.Unlock()
	var cerr error
	err := s.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP}
		setKey(&ev, key)
		cerr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		w.mu.Lock()
		delete(w.byKey, key)
		w.mu.Unlock()
	}
}

// forget stops watching s; call it before its connection is closed.
func (w *hangups) forget(s *sub) {
	key := s.watchKey.Load()
	if key == 0 {
		return
	}
	w.mu.Lock()
	delete(w.byKey, key)
	w.mu.Unlock()
	_ = s.raw.Control(func(fd uintptr) { _ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}

// run hands every hung-up connection to gone, until stop.
func (w *hangups) run(gone func(*sub)) {
	defer unix.Close(w.epfd)
	defer unix.Close(w.wake)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
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
			w.mu.Lock()
			s := w.byKey[key]
			delete(w.byKey, key) // level-triggered: report it once
			w.mu.Unlock()
			if s != nil {
				gone(s)
			}
		}
	}
}

// stop makes run return.
func (w *hangups) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(w.wake, one[:])
}
