package testenv

import (
	"net"
	"sync"
	"testing"
)

// relay is what CutProxy and TCPProxy share: a listener on loopback whose
// every connection is handed to serve with a connection dialled to the
// target, both tracked so that CutAll can close them, and everything
// closed and waited for when the test ends.
type relay struct {
	target string
	ln     net.Listener
	serve  func(client, server net.Conn) // returns when both are done with
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startRelay listens on a free loopback port and relays to target
// (host:port) with serve.
func startRelay(t testing.TB, target string, serve func(client, server net.Conn)) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{target: target, ln: ln, serve: serve, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.CutAll()
		r.wg.Wait()
	})
	return r
}

// addr is where clients connect instead of the target.
func (r *relay) addr() string { return r.ln.Addr().String() }

// CutAll closes every connection open now, both of its sides; connections
// made afterwards pass as before. It returns how many it cut.
func (r *relay) CutAll() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	n := len(r.conns) / 2
	clear(r.conns)
	return n
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		r.conns[c], r.conns[s] = struct{}{}, struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(c, s)
			c.Close()
			s.Close()
			r.mu.Lock()
			delete(r.conns, c)
			delete(r.conns, s)
			r.mu.Unlock()
		}()
	}
}
