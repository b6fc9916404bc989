package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The raw server is the floor of the capacity measurement: paced chat
// streams served with nothing but what a stream needs. No HTTP library, no
// JSON encoding, no log, no resumption: a goroutine per connection reads
// the request's head and body, writes the response head, then one
// prebuilt event per token, each with its own write(2), at the demo pace.
// Whatever a server adds to that, the machine's own cost of a paced write
// per token is below it; what this server cannot sustain, no server can
// on the same machine. Started by `sluice bench-baseline --raw`.

// rawChunk is the data of every token event, the size of a real chunk.
const rawChunk = `{"id":"chatcmpl-raw","object":"chat.completion.chunk","created":1767225600,"model":"demo","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}`

// serveRaw accepts connections on ln until ctx is done, then closes them.
func serveRaw(ctx context.Context, ln net.Listener, ttft time.Duration, tps float64) error {
	var (
		mu      sync.Mutex
		conns   = make(map[net.Conn]struct{})
		streams atomic.Int64
		wg      sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		if ctx.Err() != nil { // accepted as ctx ended: maybe after the sweep above
			c.Close()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			rawConn(c, ttft, tps, &streams)
		}()
	}
}

// rawConn answers the one request on c.
func rawConn(c net.Conn, ttft time.Duration, tps float64, streams *atomic.Int64) {
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	isStats := bytes.HasPrefix(line, []byte("GET /debug/stats"))
	length := 0
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(h)) == 0 {
			break
		}
		if v, ok := bytes.CutPrefix(bytes.ToLower(h), []byte("content-length:")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if isStats {
		_, _ = c.Write(rawStats(streams.Load()))
		return
	}
	body := make([]byte, min(max(length, 0), 1<<20))
	if _, err := io.ReadFull(br, body); err != nil {
		return
	}
	n := answerTokens(body)
	streams.Add(1)
	defer streams.Add(-1)
	buf := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n" + roleEvent)
	if _, err := c.Write(buf); err != nil {
		return
	}
	p := newPace(ttft, tps)
	defer p.stop()
	for i := range n {
		p.wait(i, nil)
		buf = append(strconv.AppendInt(append(buf[:0], "id: "...), int64(i+1), 10), "\ndata: "+rawChunk+"\n\n"...)
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
	buf = strconv.AppendInt(append(buf[:0], "id: "...), int64(n+1), 10)
	_, _ = c.Write(append(buf, "\ndata: [DONE]\n\n"...))
}

// rawStats is the answer to GET /debug/stats, as the bench reads it.
func rawStats(streams int64) []byte {
	body, _ := json.Marshal(selfStats(streams))
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	return append([]byte(head), body...)
}
