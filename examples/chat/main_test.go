package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m, http.DefaultClient) }

// echo answers with how many messages it was sent. With block set, it
// says "thinking", closes block and waits until it is stopped.
type echo struct {
	mu    sync.Mutex
	seen  []int
	block chan struct{}
}

func (m *echo) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	m.mu.Lock()
	m.seen = append(m.seen, len(req.Messages))
	block := m.block
	m.block = nil
	m.mu.Unlock()
	if block != nil {
		if err := emit(sluice.Delta{Role: "assistant", Content: "thinking"}); err != nil {
			return sluice.Usage{}, err
		}
		close(block)
		<-ctx.Done()
		return sluice.Usage{}, ctx.Err()
	}
	if err := emit(sluice.Delta{Role: "assistant", Content: fmt.Sprintf("%d messages", len(req.Messages))}); err != nil {
		return sluice.Usage{}, err
	}
	return sluice.Usage{}, emit(sluice.Delta{FinishReason: "stop"})
}

func TestTheChatKeepsTheConversation(t *testing.T) {
	m := &echo{}
	srv := testenv.NewServer(t, testenv.Options{Models: map[string]sluice.Model{"echo": m}})
	c := &client.Client{BaseURL: srv.URL, HTTPClient: srv.Client}
	var out strings.Builder
	if err := run(t.Context(), c, "echo", strings.NewReader("hello\n\nagain\n"), &out, nil); err != nil {
		t.Fatal(err)
	}
	if want := "> 1 messages\n> > 3 messages\n> \n"; out.String() != want {
		t.Fatalf("the chat printed %q, want %q", out.String(), want)
	}
}

// Stopping an answer cancels it on the server; the chat goes on.
func TestStopCancelsTheAnswerUnderWay(t *testing.T) {
	started := make(chan struct{})
	m := &echo{block: started}
	srv := testenv.NewServer(t, testenv.Options{Models: map[string]sluice.Model{"echo": m}})
	c := &client.Client{BaseURL: srv.URL, HTTPClient: srv.Client}
	in, lines := io.Pipe()
	stop := make(chan struct{})
	var out strings.Builder
	done := make(chan error, 1)
	go func() { done <- run(t.Context(), c, "echo", in, &out, stop) }()

	io.WriteString(lines, "think hard\n")
	<-started
	stop <- struct{}{} // received by the answer under way, not the prompt
	io.WriteString(lines, "next\n")
	lines.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, " [stopped]\n") || !strings.HasSuffix(got, "> 3 messages\n> \n") {
		t.Fatalf("the chat printed %q", got)
	}
}
