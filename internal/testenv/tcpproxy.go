package testenv

import (
	"io"
	"net"
	"testing"
)

// TCPProxy passes TCP connections through to a server, byte for byte, and
// cuts them all on demand (CutAll), as a network path that breaks (or a
// server that drops its clients) does, while the server itself stays up.
// Tests put it between a client and Redis to break the client's
// connections without restarting Redis. It is closed when the test ends.
type TCPProxy struct {
	Addr string // host:port to connect to instead of the server's
	*relay
}

// NewTCPProxy starts a TCPProxy to target (host:port).
func NewTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	r := startRelay(t, target, func(client, server net.Conn) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(server, client)
			server.Close() // the other copy ends too
		}()
		_, _ = io.Copy(client, server)
		client.Close()
		<-done
	})
	return &TCPProxy{Addr: r.addr(), relay: r}
}
