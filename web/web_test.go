package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

func TestHandlerServesPagesAndAssets(t *testing.T) {
	tests := []struct {
		path, contentType, contains string
		csp                         bool
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/assets/js/app.js">`, true},
		{"/live", "text/html; charset=utf-8", `<script type="module" src="/assets/js/live.js">`, true},
		{"/assets/js/sluice/index.js", "text/javascript; charset=utf-8", "export { SluiceClient }", false},
		{"/assets/js/sluice/client.js", "text/javascript; charset=utf-8", "export class SluiceClient", false},
		{"/assets/js/ws-client.js", "text/javascript; charset=utf-8", "export class SluiceWSClient", false},
		{"/assets/js/markdown.js", "text/javascript; charset=utf-8", "export function render", false},
		{"/assets/js/app.js", "text/javascript; charset=utf-8", "import", false},
		{"/assets/js/live.js", "text/javascript; charset=utf-8", "EventSource", false},
		{"/assets/js/store.js", "text/javascript; charset=utf-8", "localStorage", false},
		{"/assets/js/chats.js", "text/javascript; charset=utf-8", "export class ServerChats", false},
		{"/assets/js/sidebar.js", "text/javascript; charset=utf-8", "export class Sidebar", false},
		{"/assets/js/dom.js", "text/javascript; charset=utf-8", "export function el", false},
		{"/assets/js/sluice/conversations.js", "text/javascript; charset=utf-8", "export class Conversations", false},
		{"/assets/css/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark", false},
		{"/assets/icon.svg", "image/svg+xml", "<svg", false},
	}
	for _, tt := range tests {
		w := get(t, http.MethodGet, tt.path, nil)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: status %d", tt.path, w.Code)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != tt.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.contentType)
		}
		if !strings.Contains(w.Body.String(), tt.contains) {
			t.Errorf("GET %s: the body lacks %q", tt.path, tt.contains)
		}
		if got := w.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tt.path, got)
		}
		if csp := w.Header().Get("Content-Security-Policy"); tt.csp != strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", tt.path, got)
		}
	}
}

func TestHandlerAnswersAnUnchangedFileWith304(t *testing.T) {
	first := get(t, http.MethodGet, "/assets/js/app.js", nil)
	etag := first.Header().Get("ETag")
	if !regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong validator", etag)
	}
	again := get(t, http.MethodGet, "/assets/js/app.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("If-None-Match with the current ETag: status %d, %d bytes; want 304 and none", again.Code, again.Body.Len())
	}
	if other := get(t, http.MethodGet, "/assets/js/live.js", nil).Header().Get("ETag"); other == etag {
		t.Errorf("two files share the ETag %s", etag)
	}
}

func TestHandlerRefusesWhatItDoesNotServe(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/assets/", http.StatusNotFound},             // no directory listings
		{http.MethodGet, "/assets/js/", http.StatusNotFound},          //
		{http.MethodGet, "/assets/index.html", http.StatusNotFound},   // pages only at their routes
		{http.MethodGet, "/assets/missing.js", http.StatusNotFound},   //
		{http.MethodGet, "/assets/../web.go", http.StatusNotFound},    // nothing outside static/
		{http.MethodGet, "/index.html", http.StatusNotFound},          //
		{http.MethodPost, "/", http.StatusMethodNotAllowed},           //
		{http.MethodHead, "/assets/css/app.css", http.StatusOK},       // HEAD works like GET
		{http.MethodGet, "/live/", http.StatusNotFound},               //
		{http.MethodGet, "/assets/js/app.js?v=1", http.StatusOK},      // queries are ignored
		{http.MethodGet, "/assets/js/sluice/index.js", http.StatusOK}, //
		{http.MethodGet, "/assets/js/sluice/index.js/x", http.StatusNotFound},
		{http.MethodGet, "/assets/js/sluice/index.d.ts", http.StatusNotFound}, // the client's source only
		{http.MethodGet, "/assets/js/sluice/js.go", http.StatusNotFound},      //
		{http.MethodGet, "/assets/js/sse-client.js", http.StatusNotFound},     // the copy the client replaced
	}
	for _, tt := range tests {
		if w := get(t, tt.method, tt.path, nil); w.Code != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
	}
}

// The UI must never turn model text into HTML, nor load anything from
// another host: these would be the ways to do either.
func TestScriptsBuildNoHTMLFromStringsAndLoadNothingFromElsewhere(t *testing.T) {
	banned := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|DOMParser|srcdoc`)
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	for name, f := range load() {
		if strings.HasSuffix(name, ".js") {
			if m := banned.Find(f.body); m != nil {
				t.Errorf("%s uses %s", name, m)
			}
		}
		// The SVG namespace is an identifier, not a request.
		text := strings.ReplaceAll(string(f.body), `xmlns="http://www.w3.org/2000/svg"`, "")
		if m := external.FindString(text); m != "" {
			t.Errorf("%s loads from another host: %s", name, m)
		}
	}
}

// The chat page streams with the JavaScript client of clients/js, served
// byte for byte as npm installs it, and web/static holds no copy of it.
func TestThePageImportsTheClientPackageItself(t *testing.T) {
	src, err := os.ReadDir("../clients/js/src")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range src {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		n++
		want, err := os.ReadFile(filepath.Join("../clients/js/src", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if w := get(t, http.MethodGet, "/assets/js/sluice/"+e.Name(), nil); w.Code != http.StatusOK || w.Body.String() != string(want) {
			t.Errorf("/assets/js/sluice/%s: status %d, and not the package's file", e.Name(), w.Code)
		}
	}
	if n == 0 {
		t.Fatal("no modules in clients/js/src")
	}
	for name, f := range load() {
		if !strings.HasPrefix(name, "js/sluice/") && strings.Contains(string(f.body), "class ChatStream") {
			t.Errorf("%s holds a copy of the client", name)
		}
	}
	if app := get(t, http.MethodGet, "/assets/js/app.js", nil).Body.String(); !strings.Contains(app, "from './sluice/index.js'") {
		t.Error("app.js does not import the client package")
	}
}
