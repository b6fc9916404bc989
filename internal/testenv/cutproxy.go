package testenv

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// CutOptions say how a CutProxy cuts. The zero value cuts every event
// stream within its first 8 KiB.
type CutOptions struct {
	Seed uint64 // of the random cut points (the order of connections varies)
	// Spare is the chance that an event stream is left whole.
	Spare float64
	// MaxBytes bounds the cut point: a stream is cut after a random number
	// of its body's bytes, from 0 to MaxBytes-1 (8192 when zero), wherever
	// that falls: inside an event, a line or a UTF-8 character.
	MaxBytes int
	// Stall, instead of closing a cut connection, stops passing the
	// response and holds the connection open, as a network path that
	// silently died does: only a client's idle timeout finds it.
	Stall bool
}

// CutProxy is a TCP proxy in front of a server that cuts its event streams
// (responses of type text/event-stream) at random points, as flaky networks,
// proxies and load balancers do, and passes everything else whole. It asks
// the server to close every connection after one response (it adds
// Connection: close to each request), so that each response has a
// connection of its own to cut. It is closed when the test ends.
type CutProxy struct {
	URL string
	*relay

	o CutOptions

	mu  sync.Mutex
	rng *rand.Rand

	streams, cuts atomic.Int64
}

// NewCutProxy starts a CutProxy to the server at targetURL (http://host:port).
func NewCutProxy(t testing.TB, targetURL string, o CutOptions) *CutProxy {
	t.Helper()
	if o.MaxBytes <= 0 {
		o.MaxBytes = 8192
	}
	p := &CutProxy{o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed))}
	p.relay = startRelay(t, strings.TrimPrefix(targetURL, "http://"), p.serve)
	p.URL = "http://" + p.addr()
	return p
}

// Streams returns how many event streams have passed through the proxy.
func (p *CutProxy) Streams() int64 { return p.streams.Load() }

// Cuts returns how many of them it has cut.
func (p *CutProxy) Cuts() int64 { return p.cuts.Load() }

// cutAt decides where an event stream is cut: -1 for nowhere.
func (p *CutProxy) cutAt() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() < p.o.Spare {
		return -1
	}
	return int64(p.rng.IntN(p.o.MaxBytes))
}

func (p *CutProxy) serve(client, server net.Conn) {
	// Request: the head, with Connection: close added, then the rest as it
	// comes.
	cr := bufio.NewReader(client)
	head, err := readHead(cr)
	if err != nil {
		return
	}
	end := bytes.LastIndex(head, []byte("\r\n\r\n"))
	head = append(head[:end:end], "\r\nConnection: close\r\n\r\n"...)
	if _, err := server.Write(head); err != nil {
		return
	}
	up := make(chan struct{})
	go func() {
		defer close(up)
		io.Copy(server, cr)
	}()

	// Response: the head whole, then the body, cut if it is an event stream.
	sr := bufio.NewReader(server)
	head, err = readHead(sr)
	if err == nil {
		_, err = client.Write(head)
	}
	if err == nil {
		cut := int64(-1)
		if isEventStreamHead(head) {
			p.streams.Add(1)
			cut = p.cutAt()
		}
		if cut < 0 {
			io.Copy(client, sr)
		} else if n, _ := io.CopyN(client, sr, cut); n == cut {
			p.cuts.Add(1)
			if p.o.Stall {
				// Hold the connection open, passing no more of the
				// response, until the client gives up on it or the proxy
				// closes.
				<-up
			}
		}
	}
	client.Close()
	server.Close()
	<-up
}

// readHead reads an HTTP head, through its blank line.
func readHead(r *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := r.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			return nil, err
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			return head, nil
		}
	}
}

func isEventStreamHead(head []byte) bool {
	for _, l := range strings.Split(string(head), "\r\n") {
		name, value, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Type") {
			return strings.HasPrefix(strings.ToLower(strings.TrimSpace(value)), "text/event-stream")
		}
	}
	return false
}
