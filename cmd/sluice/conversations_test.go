package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestDefaultDataDirFollowsTheSystem: conversations go where the system
// keeps a user's data, XDG_DATA_HOME first, and nowhere without a home.
func TestDefaultDataDirFollowsTheSystem(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the XDG layout is Linux's")
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_DATA_HOME": "/data", "HOME": "/home/ann"}, "/data/sluice"},
		{map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/home/ann"}, "/home/ann/.local/share/sluice"},
		{map[string]string{"HOME": "/home/ann"}, "/home/ann/.local/share/sluice"},
		{map[string]string{}, ""},
	} {
		if got := defaultDataDir(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.env, got, tc.want)
		}
	}
}

// TestConversationFlagsAreValidated: bad values name their flag.
func TestConversationFlagsAreValidated(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"--conversation-stale", "0s"}},
		{[]string{"--database-url", "mysql://x/y"}},
	} {
		_, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.args[0]) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.args[0])
		}
	}
	cfg, err := parseConfig(nil, func(k string) string { return map[string]string{"SLUICE_DATA_DIR": "/srv/sluice"}[k] }, io.Discard)
	if err != nil || cfg.Conv.DataDir != "/srv/sluice" {
		t.Fatalf("SLUICE_DATA_DIR: %q, %v", cfg.Conv.DataDir, err)
	}
}

// call sends a JSON request and decodes a 200's JSON answer into out
// (when set); it returns the response, its body read.
func call(t *testing.T, method, url string, body any, out any) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return resp
}

type storedItem struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Status  string `json:"status"`
	Content []struct {
		Text string `json:"text"`
	} `json:"content"`
	Error *struct {
		Kind string `json:"kind"`
	} `json:"error"`
}

func (it storedItem) text() string {
	if len(it.Content) == 0 {
		return ""
	}
	return it.Content[0].Text
}

func newConversation(t *testing.T, url string) string {
	t.Helper()
	var c struct{ ID string }
	call(t, "POST", url+"/v1/conversations", map[string]any{"title": "kept"}, &c)
	return c.ID
}

// answer returns the assistant message of conversation id (the last item).
func answer(t *testing.T, url, id string) storedItem {
	t.Helper()
	var l struct{ Data []storedItem }
	call(t, "GET", url+"/v1/conversations/"+id+"/items?limit=1", nil, &l)
	if len(l.Data) == 0 || l.Data[0].Role != "assistant" {
		t.Fatalf("no answer in %+v", l.Data)
	}
	return l.Data[0]
}

// chatIn starts a streaming chat in conversation id and returns the
// response, open.
func chatIn(t *testing.T, url, id, prompt string) *http.Response {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"model": "demo", "stream": true, "conversation": id,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Sluice-Message-ID") == "" {
		t.Fatalf("chat: %s %v", resp.Status, resp.Header)
	}
	return resp
}

// TestConversationsSurviveARestartInTheDefaultDataDir: with nothing
// configured but a home, conversations are kept in the user's data
// directory and are there after a restart, answer and all.
func TestConversationsSurviveARestartInTheDefaultDataDir(t *testing.T) {
	home := t.TempDir()
	getenv := func(k string) string { return map[string]string{"HOME": home}[k] }
	url, stop := startServeEnv(t, getenv, "--demo-ttft", "0s", "--demo-tps", "0")
	id := newConversation(t, url)
	resp := chatIn(t, url, id, "hello")
	streamed := lastData(t, bufio.NewReader(resp.Body))
	if streamed != "[DONE]" {
		t.Fatalf("the chat ended with %q", streamed)
	}
	testenv.Eventually(t, "the answer stored", func() bool { return answer(t, url, id).Status == "completed" })
	before := answer(t, url, id)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "sluice", "sluice.db")); err != nil {
		t.Fatalf("no database in the default data dir: %v", err)
	}

	url, _ = startServeEnv(t, getenv)
	after := answer(t, url, id)
	if after.Status != "completed" || after.text() != before.text() || after.text() == "" {
		t.Fatalf("after a restart: %+v; before: %+v", after, before)
	}
}

// TestAnAnswerWhoseNodeWasKilledIsMarkedInterrupted: a node killed with
// -9 mid-answer stores no end; once a node runs again on the database, its
// sweeper marks the answer interrupted, keeping the text stored before.
func TestAnAnswerWhoseNodeWasKilledIsMarkedInterrupted(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--demo-ttft", "0s", "--demo-tps", "5", "--conversation-stale", "1s"}
	a := startChild(t, args...)
	id := newConversation(t, a.URL)
	chatIn(t, a.URL, id, "tell me a long story about rivers and the sea")
	var kept string
	testenv.Eventually(t, "part of the answer stored", func() bool {
		it := answer(t, a.URL, id)
		kept = it.text()
		return it.Status == "in_progress" && kept != ""
	})
	a.signal(t, syscall.SIGKILL)
	<-a.done

	b := startChild(t, args...)
	var it storedItem
	testenv.Eventually(t, "the answer marked interrupted", func() bool {
		it = answer(t, b.URL, id)
		return it.Status == "interrupted"
	})
	if !strings.HasPrefix(it.text(), kept) || it.text() == "" {
		t.Fatalf("interrupted answer kept %q; %q was stored before the kill", it.text(), kept)
	}
	if n := getMetrics(t, b.URL+"/metrics").of(`sluice_conversation_swept_interrupted_total`); n != 1 {
		t.Fatalf("the node that swept counts %v answers marked interrupted, want 1", n)
	}
}

// TestShutdownStoresTheEndOfEveryAnswer: a node told to stop while an
// answer streams cuts it when its grace is over, stores its end (the
// answer interrupted, its text kept) and only then closes the database:
// after a restart the answer is not left in progress.
func TestShutdownStoresTheEndOfEveryAnswer(t *testing.T) {
	dir := t.TempDir()
	url, stop := startServe(t, "--data-dir", dir, "--demo-ttft", "0s", "--demo-tps", "50", "--shutdown-grace", "0s")
	id := newConversation(t, url)
	br := bufio.NewReader(chatIn(t, url, id, "tell me a long story about rivers and the sea").Body)
	for range 5 { // the role and some tokens have streamed
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if last := lastData(t, br); !strings.Contains(last, "server_shutting_down") {
		t.Fatalf("the stream ended with %q", last)
	}

	url, _ = startServe(t, "--data-dir", dir)
	it := answer(t, url, id)
	if it.Status != "interrupted" || it.Error == nil || it.Error.Kind != "server_shutting_down" || it.text() == "" {
		t.Fatalf("after a shutdown mid-answer the answer is %+v", it)
	}
}
