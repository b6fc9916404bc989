package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TransportH2 is SSE over HTTPS with HTTP/2, as browsers speak to a
// server with TLS: many streams share each connection, and the server
// serves each in a handler of its own (the hub cannot take an HTTP/2
// stream over). The bench measures it for idle memory only.
const TransportH2 = "h2"

// benchClient asks the servers the bench started for their figures. They
// are on this machine's loopback, and those that serve HTTPS do so with a
// certificate the bench made a moment before: it is not checked.
var benchClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}

// tlsArgs returns the flags that make a server the bench starts serve
// HTTPS, with a self-signed certificate for 127.0.0.1 written once per run
// into a directory removed at the end (see cleanup).
func (r *runner) tlsArgs() ([]string, error) {
	r.certOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bench-tls-")
		if err != nil {
			r.certErr = err
			return
		}
		r.certDir = dir
		r.certErr = writeSelfSigned(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	})
	if r.certErr != nil {
		return nil, fmt.Errorf("making a certificate: %w", r.certErr)
	}
	return []string{"--tls-cert", filepath.Join(r.certDir, "cert.pem"), "--tls-key", filepath.Join(r.certDir, "key.pem")}, nil
}

func writeSelfSigned(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// h2Streams are a worker's HTTP/2 subscriptions: their bodies, held open
// unread (an idle stream sends only heartbeats), and the transport whose
// connections carry them.
type h2Streams struct {
	tr     *http.Transport
	client *http.Client
	mu     sync.Mutex
	bodies []io.Closer
}

func newH2Streams(d *net.Dialer) *h2Streams {
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	return &h2Streams{tr: tr, client: &http.Client{Transport: tr}}
}

// subscribe opens one subscription as an HTTP/2 stream (net/http's
// transport opens another connection when the server's limit of streams
// on one is reached) and waits until the server has answered.
func (h *h2Streams) subscribe(host, topic string) error {
	resp, err := h.client.Get("https://" + host + "/v1/topics/" + topic + "/events")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		resp.Body.Close()
		return fmt.Errorf("subscribe over HTTP/2: %s %s", resp.Proto, resp.Status)
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, resp.Body)
	h.mu.Unlock()
	return nil
}

func (h *h2Streams) close() {
	h.mu.Lock()
	for _, b := range h.bodies {
		b.Close()
	}
	h.bodies = nil
	h.mu.Unlock()
	h.tr.CloseIdleConnections()
}
