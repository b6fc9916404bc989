// Package web is Sluice's browser UI: a chat page at / and the broadcast
// page at /live, with their styles and scripts under /assets/, and the
// JavaScript client (package clients/js) under /assets/js/sluice/, which
// the chat page streams with. Everything is embedded in the binary with
// go:embed and served from memory, so `sluice` alone gives a person a chat
// page, with no build step and no request to any other host.
//
// The pages are plain HTML, CSS and ES modules that use Sluice's public HTTP
// API and nothing else: in the flow request → model → log → reader →
// transport, the UI is a client on the far side of the wire, and this
// package only hands its files out.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/clients/js"
)

//go:embed static
var static embed.FS

// Patterns are the routes Handler answers, precise enough that every other
// path still reaches the API's JSON 404.
var Patterns = []string{"GET /{$}", "GET /live", "GET /assets/"}

// securityHeaders go on every page. The content security policy lets the
// pages load only their own files and talk only to their own origin, so
// even a rendering bug could not run model text as script or fetch
// anything from elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
		"img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler returns the handler of the UI's routes (see Patterns): / is the
// chat page, /live the broadcast page, and /assets/ the files they load.
// Other paths get a plain 404. Responses carry a strong ETag and
// Cache-Control: no-cache, so a browser revalidates cheaply and never keeps
// files of an older binary. Every call returns the same handler, which is
// safe for concurrent use.
func Handler() http.Handler { return handler() }

var handler = sync.OnceValue(func() http.Handler {
	files := load()
	pages := map[string]*file{"/": files["index.html"], "/live": files["live.html"]}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if f, ok := pages[r.URL.Path]; ok {
			for k, v := range securityHeaders {
				w.Header().Set(k, v)
			}
			serve(w, r, f)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/assets/")
		// The pages themselves are served only at their routes.
		if f := files[name]; ok && f != nil && !strings.HasSuffix(name, ".html") {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			serve(w, r, f)
			return
		}
		http.NotFound(w, r)
	})
})

func serve(w http.ResponseWriter, r *http.Request, f *file) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304 and handles HEAD and
	// ranges; the zero time leaves Last-Modified out.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// clientDir is where the chat page finds the JavaScript client: the npm
// package of clients/js, whose source that package embeds, so that the
// page imports the very code that application developers install rather
// than a copy of it.
const clientDir = "js/sluice/"

// load reads every embedded file once, keyed by its path under static/,
// and the client's modules under clientDir.
func load() map[string]*file {
	files := map[string]*file{}
	add := func(fsys fs.FS, root, prefix string) {
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			name := prefix + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
			files[name] = &file{
				body:        body,
				contentType: contentType(p),
				etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			}
			return nil
		})
		if err != nil {
			panic("web: reading the embedded files: " + err.Error()) // cannot happen: the files are in the binary
		}
	}
	add(static, "static", "")
	add(js.Source, ".", clientDir)
	return files
}

// contentType names the types the UI uses itself, so that they do not depend
// on the host's MIME tables.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
