package sockio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice/internal/sockio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

// TestWriteNowTakesWhatTheSocketTakesAndNoMore writes far more than the
// socket's buffers hold to a client that does not read: WriteNow returns
// at once with the part the kernel took and ErrWouldBlock (a write that
// waited would never return). Once the client has read it all, the rest
// goes, in order.
func TestWriteNowTakesWhatTheSocketTakesAndNoMore(t *testing.T) {
	server, client := tcpPair(t)
	_ = server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	var c sockio.Conn
	c.Init(server)
	if !c.HasSocket() {
		t.Fatal("a TCP connection has no socket")
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	n, err := c.WriteNow(want)
	if !errors.Is(err, sockio.ErrWouldBlock) || n <= 0 || n >= len(want) {
		t.Fatalf("WriteNow of 8 MiB to a client that reads nothing: %d bytes, %v; want part of it and ErrWouldBlock", n, err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- b
	}()
	if _, err := c.Write(want[n:]); err != nil { // waiting, this time
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), len(want))
	}
}

// TestWriteNowIgnoresAPastDeadline: a deadline left by a blocking write
// that has passed must not fail a write that does not wait (a quiet
// stream's heartbeat would otherwise be taken for a vanished reader).
func TestWriteNowIgnoresAPastDeadline(t *testing.T) {
	server, client := tcpPair(t)
	var c sockio.Conn
	c.Init(server)
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := c.WriteNow([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("WriteNow after the deadline passed: %d, %v; want 4, nil", n, err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "ping" {
		t.Fatalf("the client read %q, %v", b, err)
	}
}

// TestWriteNowWithoutASocketWaitsBriefly: a connection with no socket of
// its own (net.Pipe here, TLS in use) is written with a deadline of
// FastWrite, so a client that reads nothing holds the writer that long
// only.
func TestWriteNowWithoutASocketWaitsBriefly(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	var c sockio.Conn
	c.Init(server)
	if c.HasSocket() {
		t.Fatal("net.Pipe has a socket")
	}
	start := time.Now()
	n, err := c.WriteNow([]byte("token"))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteNow to a pipe nobody reads: %d, %v; want 0 and a deadline error", n, err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("WriteNow waited %v; want about %v", waited, sockio.FastWrite)
	}
}
