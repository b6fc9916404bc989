//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux a worker reads all its SSE generations in one event loop: one
// level-triggered epoll instance over non-blocking sockets, and one read(2)
// per readiness, which returns everything pending. A goroutine per
// connection costs, per token, that read, a second read that fails with
// EAGAIN before the goroutine parks, and a wake-up; at 5,000 generations of
// 50 tokens/s that is CPU taken from the server the bench measures.
//
// The goroutine of a generation's slot still dials, sends the request and
// reads the response head with blocking net.Conn calls; then it hands a
// duplicate of the socket to the loop, closes the net.Conn (which takes the
// socket out of Go's poller) and waits until the loop reports the
// generation's end. The loop closes the socket.

// sseLoop is a worker's event loop. Its goroutine, run, ends, closing
// every socket, once the worker's context is done; the worker's stop waits
// for it.
type sseLoop struct {
	w    *worker
	epfd int
	wake int // an eventfd, written once the worker's context is done

	// hists has the timings of the events the loop reads, of every
	// generation: one set of histograms stays in the CPU's cache, where
	// one per generation would not.
	hists Report

	mu     sync.Mutex
	conns  map[int32]*sseConn // by fd: generations added and not yet ended
	closed bool               // the loop ended: the fds above are closed
}

// sseConn is one generation the loop reads.
type sseConn struct {
	fd   int
	body loopBody
	t    *timing
	done chan error // its end: nil after [DONE] or an error event
}

var errLoopEnded = errors.New("the SSE event loop ended")

// startReader starts the worker's event loop.
func (w *worker) startReader() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	w.loop = &sseLoop{w: w, epfd: epfd, wake: wake, conns: make(map[int32]*sseConn), hists: newReport()}
	w.loopWG.Add(1)
	go w.loop.run()
	return nil
}

// loopBody is what the loop makes of a generation's bytes: an SSE
// response body (httpBody) or WebSocket frames (wsFrames).
type loopBody interface {
	feed(p []byte, now time.Time, s eventSink) (bool, error)
	closed(err error) error
}

// readSSE reads the generation on s to its end, timing its events with t,
// and closes s.
func (w *worker) readSSE(s *stream, t *timing) error {
	return w.readLoop(s, newHTTPBody(s.resp), t, nil)
}

// readWS reads the frames of the generation on s, whose chat.start has
// been sent, to its end, timing its events with t, and closes s.
func (w *worker) readWS(s *stream, t *timing) error {
	f := &wsFrames{}
	return w.readLoop(s, f, t, func(fd int) {
		f.pong = func(p []byte) error {
			_, err := unix.Write(fd, pongFrame(p))
			return err
		}
	})
}

// readLoop hands s to the loop, which reads body from it, and waits for
// the generation's end. withFD, if set, is told the loop's descriptor.
func (w *worker) readLoop(s *stream, body loopBody, t *timing, withFD func(fd int)) error {
	fd, err := dupSocket(s.conn)
	w.untrack(s.conn) // the duplicate keeps the socket open
	if err != nil {
		if w.ctx.Err() != nil {
			return nil
		}
		return err
	}
	if withFD != nil {
		withFD(fd)
	}
	c := &sseConn{fd: fd, body: body, t: t, done: make(chan error, 1)}
	// The bytes read with the response head come first.
	if k := s.br.Buffered(); k > 0 {
		p, _ := s.br.Peek(k)
		end, err := c.body.feed(p, time.Now(), t)
		if end || err != nil {
			unix.Close(fd)
			if end {
				w.gens.Add(1)
			}
			return err
		}
	}
	t.h = &w.loop.hists // from here on only the loop times the events
	if err := w.loop.add(c); err != nil {
		unix.Close(fd)
		if w.ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := <-c.done; err != nil && w.ctx.Err() == nil {
		return err
	}
	return nil
}

// dupSocket returns a non-blocking duplicate of c's socket, for a poller
// other than Go's.
func dupSocket(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	err = rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err == nil {
		err = dupErr
	}
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	// Already so, as Go's poller made it: O_NONBLOCK belongs to the open
	// file, which the duplicate shares. Said once more for the loop's sake.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("dup: %w", err)
	}
	return fd, nil
}

// add hands c to the loop, which sends on c.done when the generation ends.
func (l *sseLoop) add(c *sseConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLoopEnded
	}
	// In the map before epoll can report the fd, under the lock run takes
	// to look it up.
	l.conns[int32(c.fd)] = c
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		delete(l.conns, int32(c.fd))
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// run waits for readable sockets and reads each once per wait, until the
// worker's context is done.
func (l *sseLoop) run() {
	defer l.w.loopWG.Done()
	defer l.w.merge(&l.hists)
	stop := context.AfterFunc(l.w.ctx, l.interrupt)
	defer stop()
	events := make([]unix.EpollEvent, 256)
	ready := make([]*sseConn, len(events))
	// One buffer for every read: a read returns all that is pending (an
	// event is ~300 bytes), and a connection keeps only an unfinished event.
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			l.w.fail(fmt.Errorf("epoll_wait: %w", err))
			l.shutdown()
			return
		}
		l.mu.Lock()
		for i, ev := range events[:n] {
			ready[i] = l.conns[ev.Fd] // nil for the eventfd
		}
		l.mu.Unlock()
		for i, c := range ready[:n] {
			if events[i].Fd == int32(l.wake) {
				l.shutdown()
				return
			}
			if c != nil {
				ready[i] = nil
				l.read(c, buf)
			}
		}
	}
}

// read reads c once, and ends its generation if the read ends it.
func (l *sseLoop) read(c *sseConn, buf []byte) {
	n, err := unix.Read(c.fd, buf)
	switch {
	case n > 0:
		end, err := c.body.feed(buf[:n], time.Now(), c.t)
		if end {
			l.w.gens.Add(1)
		}
		if end || err != nil {
			l.end(c, err)
		}
	case err == unix.EAGAIN || err == unix.EINTR:
	case n == 0 && err == nil:
		l.end(c, c.body.closed(nil)) // the server closed the connection
	default:
		l.end(c, c.body.closed(err))
	}
}

// end closes c's socket (which also takes it out of the epoll set: the
// loop holds its only descriptor) and reports err to c's slot.
func (l *sseLoop) end(c *sseConn, err error) {
	l.mu.Lock()
	delete(l.conns, int32(c.fd))
	l.mu.Unlock()
	unix.Close(c.fd)
	c.done <- err
}

// interrupt wakes the loop to end it.
func (l *sseLoop) interrupt() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_, _ = unix.Write(l.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// shutdown closes every socket, reporting the end of its generation, and
// the loop's own descriptors.
func (l *sseLoop) shutdown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for fd, c := range l.conns {
		unix.Close(int(fd))
		c.done <- errLoopEnded
	}
	clear(l.conns)
	unix.Close(l.wake)
	unix.Close(l.epfd)
}
