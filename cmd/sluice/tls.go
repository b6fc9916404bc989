package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckEvery is how often, at most, a handshake looks whether the
// certificate files changed.
const certCheckEvery = time.Second

// certFiles serves the certificate in a pair of PEM files and reloads it
// when they change, so that a certificate renewed while Sluice runs is
// served from the next handshakes on, without a restart.
//
// A handshake looks at the files' modification times and sizes (os.Stat,
// which follows symbolic links) at most once every certCheckEvery; no
// goroutine and no file watcher are needed. Watching for changes instead
// (inotify, fsnotify) misses the ways renewals replace files: certbot
// repoints symbolic links, Kubernetes swaps a directory link, editors
// write a new file and rename it over the old. A pair that does not load
// (a renewal that has written the certificate but not yet its key) keeps
// the last good certificate in service and is tried again at the next
// check.
type certFiles struct {
	certPath, keyPath string
	log               *slog.Logger
	checkEvery        time.Duration // certCheckEvery; tests set 0: every handshake

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // what the files looked like when cert was loaded, or when loading last failed
	checked time.Time
}

// loadCertFiles loads the pair, or fails naming what is wrong with it.
func loadCertFiles(certPath, keyPath string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certPath: certPath, keyPath: keyPath, log: log, checkEvery: certCheckEvery}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

// stampNow describes the files as they are now.
func (c *certFiles) stampNow() (string, error) {
	var stamp string
	for _, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

// GetCertificate is tls.Config's GetCertificate: the certificate of the
// files as last loaded, reloaded first if they changed.
func (c *certFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.checkEvery {
		c.checked = now
		c.reloadLocked()
	}
	return c.cert, nil
}

func (c *certFiles) reloadLocked() {
	stamp, err := c.stampNow()
	if err != nil || stamp == c.stamp {
		if err != nil && c.stamp != "" {
			c.log.Warn("TLS: cannot read the certificate files; serving the last good certificate", "err", err)
			c.stamp = ""
		}
		return
	}
	c.stamp = stamp
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		c.log.Warn("TLS: the certificate files changed but do not load; serving the last good certificate until they do", "err", err)
		return
	}
	c.cert = &cert
	c.log.Info("TLS: loaded the renewed certificate", "cert", c.certPath, "not_after", cert.Leaf.NotAfter)
}

// tlsConfig is the TLS configuration of the API listener: the files'
// certificate, TLS 1.2 and later. net/http adds HTTP/2 to it (ALPN "h2"
// before "http/1.1"): a browser then opens one connection to Sluice for all
// its streams, not six at most.
func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.GetCertificate, MinVersion: tls.VersionTLS12}
}
