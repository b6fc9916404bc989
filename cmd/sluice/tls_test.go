package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost.
type testCert struct {
	x509            *x509.Certificate
	certPEM, keyPEM []byte
}

func newTestCert(t *testing.T, serial int64) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "sluice test " + strconv.FormatInt(serial, 10)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{x509: cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})}
}

// install writes c's files where the server reads them, each by a rename
// as renewals do, so that the server never reads a half-written file.
func (c testCert) install(t *testing.T, certPath, keyPath string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyPath, c.keyPEM}, {certPath, c.certPEM}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// h2Client is a client that trusts certs and speaks HTTP/2; perStream,
// when not zero, is its flow-control window for each response.
func h2Client(t *testing.T, perStream int, certs ...testCert) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.x509)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	if perStream > 0 {
		tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: perStream}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// servedSerial dials addr afresh and returns the serial number of the
// certificate it serves.
func servedSerial(t *testing.T, addr string, c *http.Client) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, c.Transport.(*http.Transport).TLSClientConfig.Clone())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSServesEverythingOverHTTP2 serves HTTPS with a generated
// certificate and does, over HTTP/2, what the API promises over HTTP/1.1:
// a chat, its resume, a cancel, a topic with heartbeats while it is
// quiet, and a slow reader cut off beside one that gets every event. Then
// it replaces the certificate files, and new connections get the new
// certificate without a restart.
func TestTLSServesEverythingOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first, second := newTestCert(t, 1), newTestCert(t, 2)
	first.install(t, certPath, keyPath)
	const writeTimeout = 300 * time.Millisecond
	plain, _ := startServe(t, "--tls-cert", certPath, "--tls-key", keyPath, "--heartbeat", "50ms",
		"--write-timeout", writeTimeout.String(), "--demo-tps", "500", "--demo-ttft", "0s")
	addr := strings.TrimPrefix(plain, "http://")
	url := "https://" + addr
	client := h2Client(t, 0, first, second)

	do := func(method, path string, body any, header ...string) *http.Response {
		t.Helper()
		resp := testenv.Do(t, client, method, url+path, body, header...)
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s %s was answered over %s, want HTTP/2", method, path, resp.Proto)
		}
		return resp
	}

	t.Run("a chat, resumed after its first event", func(t *testing.T) {
		resp := do(http.MethodPost, "/v1/chat/completions", testenv.ChatBody("tell me about rivers"))
		evs := testenv.Events(t, resp, -1)
		full, last := testenv.EventsText(t, evs)
		if last != "[DONE]" || full == "" {
			t.Fatalf("chat over HTTP/2 ended with %q after %q", last, full)
		}
		rest := testenv.Events(t, do(http.MethodGet, "/v1/streams/"+resp.Header.Get("Sluice-Stream-ID"), nil,
			"Last-Event-ID", evs[1].ID), -1)
		head, _ := testenv.EventsText(t, evs[:2])
		tail, last := testenv.EventsText(t, rest)
		if head+tail != full || last != "[DONE]" {
			t.Fatalf("resumed after event %s: %q + %q, want %q", evs[1].ID, head, tail, full)
		}
	})

	t.Run("a cancel ends the stream with its reason", func(t *testing.T) {
		resp := do(http.MethodPost, "/v1/chat/completions", testenv.ChatBody("long"))
		first := testenv.Events(t, resp, 2)
		if len(first) != 2 {
			t.Fatal("no events")
		}
		if c := do(http.MethodPost, "/v1/streams/"+resp.Header.Get("Sluice-Stream-ID")+"/cancel", nil); c.StatusCode != http.StatusOK {
			t.Fatalf("cancel: %s", c.Status)
		}
		rest := testenv.Events(t, resp, -1)
		if last := rest[len(rest)-1].Data; !strings.Contains(last, `"code":"cancelled"`) {
			t.Fatalf("the cancelled stream ended with %q", last)
		}
	})

	t.Run("a quiet topic gets heartbeats, then its event", func(t *testing.T) {
		resp := do(http.MethodGet, "/v1/topics/quiet/events", nil)
		br := bufio.NewReader(resp.Body)
		for pings := 0; pings < 3; {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("the quiet topic: %v", err)
			}
			if line == ": ping\n" {
				pings++
			}
		}
		if p := do(http.MethodPost, "/v1/topics/quiet/events", map[string]any{"data": "at last"}); p.StatusCode != http.StatusCreated {
			t.Fatalf("publish: %s", p.Status)
		}
		ev, err := sse.NewReader(br).Next()
		if err != nil || ev.Data != "at last" {
			t.Fatalf("after the heartbeats: %+v, %v", ev, err)
		}
	})

	t.Run("a reader that stops reading is cut, the others are not", func(t *testing.T) {
		// Its window takes 64 KiB; then the server's write waits, and is
		// given up after the write timeout.
		slowClient := h2Client(t, 64<<10, first, second)
		slow := testenv.Do(t, slowClient, http.MethodGet, url+"/v1/topics/big/events", nil)
		fast := do(http.MethodGet, "/v1/topics/big/events", nil)
		const n, size = 40, 32 << 10
		var wg sync.WaitGroup
		var got []string
		wg.Add(1)
		go func() {
			defer wg.Done()
			got = eventData(fast, n)
		}()
		for i := range n {
			if p := do(http.MethodPost, "/v1/topics/big/events", map[string]any{"data": strconv.Itoa(i) + strings.Repeat("x", size)}); p.StatusCode != http.StatusCreated {
				t.Fatalf("publish %d: %s", i, p.Status)
			}
		}
		wg.Wait()
		if len(got) != n {
			t.Fatalf("the reader that reads got %d of %d events", len(got), n)
		}
		testenv.Eventually(t, "the slow reader counted as cut", func() bool {
			return getMetricsWith(t, client, url+"/metrics").of(`sluice_slow_readers_cut_total{reason="write_timeout",transport="sse_fallback"}`) >= 1
		})
		// What it has not read ends in a reset stream, not in all events.
		if evs := eventData(slow, n); len(evs) == n {
			t.Fatalf("the reader that stopped reading got all %d events", n)
		}
	})

	t.Run("/ws upgrades over HTTP/1.1 on the same port", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: client.Transport.(*http.Transport).TLSClientConfig.Clone()}}
		wc, _, err := websocket.Dial(ctx, "wss://"+addr+"/ws", &websocket.DialOptions{HTTPClient: wsClient})
		if err != nil {
			t.Fatalf("wss:// dial: %v", err)
		}
		defer wc.CloseNow()
		if err := wc.Write(ctx, websocket.MessageText, []byte(`{"type":"chat.start","body":{"model":"demo","messages":[{"role":"user","content":"short"}]}}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, msg, err := wc.Read(ctx)
			if err != nil {
				t.Fatalf("reading /ws over TLS: %v", err)
			}
			if strings.Contains(string(msg), `"data":"[DONE]"`) {
				break
			}
		}
	})

	t.Run("a renewed certificate is served without a restart", func(t *testing.T) {
		if s := servedSerial(t, addr, client); s != 1 {
			t.Fatalf("serving certificate %d, want 1", s)
		}
		second.install(t, certPath, keyPath)
		testenv.Eventually(t, "the renewed certificate served", func() bool { return servedSerial(t, addr, client) == 2 })
	})
}

// TestCertificateFilesThatDoNotLoadKeepTheLastGoodOne looks at the files at
// every handshake: a pair half written (a certificate that is not one yet)
// keeps the last good certificate in service, and the next good pair is
// served.
func TestCertificateFilesThatDoNotLoadKeepTheLastGoodOne(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	newTestCert(t, 1).install(t, certPath, keyPath)
	c, err := loadCertFiles(certPath, keyPath, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	c.checkEvery = 0
	serial := func() int64 {
		t.Helper()
		cert, err := c.GetCertificate(nil)
		if err != nil || cert == nil {
			t.Fatalf("GetCertificate: %v, %v", cert, err)
		}
		return cert.Leaf.SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serving %d, want 1", s)
	}
	next := newTestCert(t, 2)
	if err := os.WriteFile(keyPath, next.keyPEM, 0o600); err != nil { // the key first: the pair does not match
		t.Fatal(err)
	}
	if s := serial(); s != 1 {
		t.Fatalf("with a key that does not match: serving %d, want the last good 1", s)
	}
	if err := os.WriteFile(certPath, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 1 {
		t.Fatalf("with a half-written certificate: serving %d, want the last good 1", s)
	}
	next.install(t, certPath, keyPath)
	if s := serial(); s != 2 {
		t.Fatalf("with the new pair in place: serving %d, want 2", s)
	}
	if _, err := loadCertFiles(filepath.Join(dir, "none.pem"), keyPath, testenv.Logger(t)); err == nil {
		t.Fatal("a certificate file that does not exist loaded")
	}
}

// eventData reads up to n events' data from resp, until the stream ends
// or fails.
func eventData(resp *http.Response, n int) []string {
	var out []string
	rd := sse.NewReader(bufio.NewReader(resp.Body))
	for len(out) < n {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		out = append(out, ev.Data)
	}
	resp.Body.Close()
	return out
}

func getMetricsWith(t *testing.T, c *http.Client, url string) scrape {
	t.Helper()
	resp := testenv.Do(t, c, http.MethodGet, url, nil)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parseScrape(t, string(b))
}
