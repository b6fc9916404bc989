//go:build linux

package sockio_test

import (
	"net"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/sockio"
)

// watching runs p until the test ends, and returns what it reports.
func watching(t *testing.T, p *sockio.Poller[string]) <-chan string {
	t.Helper()
	if p == nil {
		t.Fatal("no epoll on Linux")
	}
	ready := make(chan string, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(func(name string) { ready <- name })
	}()
	t.Cleanup(func() {
		p.Stop()
		<-done
	})
	return ready
}

func reported(t *testing.T, ready <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ready:
		if got != want {
			t.Fatalf("reported %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not reported within 10s", want)
	}
}

// TestPollerReportsAHangUp: a client that closes its end is reported at
// once, as what the socket was watched as; re-armed, it is reported again
// (it is still hung up).
func TestPollerReportsAHangUp(t *testing.T) {
	p := sockio.NewPoller[string](sockio.HangUp)
	ready := watching(t, p)
	server, client := tcpPair(t)
	var c sockio.Conn
	c.Init(server)
	if !p.Watch("gone", &c, true) {
		t.Fatal("Watch refused a TCP connection")
	}
	defer p.Forget(&c)
	client.Close()
	reported(t, ready, "gone")
	p.Rearm(&c)
	reported(t, ready, "gone")
}

// TestPollerReportsBytesToReadOnceArmed: a socket watched unarmed is
// reported once Rearm arms it, with the client's bytes waiting.
func TestPollerReportsBytesToReadOnceArmed(t *testing.T) {
	p := sockio.NewPoller[string](sockio.Readable)
	ready := watching(t, p)
	server, client := tcpPair(t)
	var c sockio.Conn
	c.Init(server)
	if !p.Watch("readable", &c, false) {
		t.Fatal("Watch refused a TCP connection")
	}
	defer p.Forget(&c)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	p.Rearm(&c)
	reported(t, ready, "readable")
}

// TestPollerCannotWatchAConnectionWithoutASocket: a connection with no
// socket (net.Pipe here, TLS in use) is refused, for its owner to watch it
// otherwise; a nil Poller refuses everything.
func TestPollerCannotWatchAConnectionWithoutASocket(t *testing.T) {
	p := sockio.NewPoller[string](sockio.Readable)
	watching(t, p)
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	var c sockio.Conn
	c.Init(server)
	if p.Watch("pipe", &c, true) {
		t.Fatal("Watch took a connection without a socket")
	}
	var none *sockio.Poller[string]
	tcp, _ := tcpPair(t)
	var d sockio.Conn
	d.Init(tcp)
	if none.Watch("tcp", &d, true) {
		t.Fatal("a nil Poller watched a connection")
	}
	none.Rearm(&d)
	none.Forget(&d)
	none.Stop()
}
