// Command chat is a chat with Sluice on the command line, written with
// Sluice's Go client (package client): type a message and read the answer
// as it streams. The conversation is kept, so each answer knows what came
// before; a dropped connection is resumed without a word lost. Ctrl-C
// stops an answer (and the generation on the server); at the prompt, Ctrl-C
// or Ctrl-D quits.
//
//	go run ./cmd/sluice &
//	go run ./examples/chat                     # -url, -model; SLUICE_API_KEY for a key
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/sluice-dev/sluice/client"
)

func main() {
	url := flag.String("url", client.DefaultBaseURL, "Sluice's base URL")
	model := flag.String("model", "demo", "the model to ask")
	flag.Parse()
	c := &client.Client{BaseURL: *url, APIKey: os.Getenv("SLUICE_API_KEY")}

	// Ctrl-C stops the answer under way, or quits at the prompt.
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	stop := make(chan struct{})
	go func() {
		for range interrupts {
			stop <- struct{}{}
		}
	}()
	if err := run(context.Background(), c, *model, os.Stdin, os.Stdout, stop); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run chats until in ends or stop comes at the prompt. A stop during an
// answer cancels it.
func run(ctx context.Context, c *client.Client, model string, in io.Reader, out io.Writer, stop <-chan struct{}) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var history []client.Message
	for {
		fmt.Fprint(out, "> ")
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(out)
				return nil
			}
			line = strings.TrimSpace(l)
		case <-stop:
			fmt.Fprintln(out)
			return nil
		}
		if line == "" {
			continue
		}
		history = append(history, client.Message{Role: "user", Content: line})
		answer, err := ask(ctx, c, model, history, out, stop)
		if err != nil {
			history = history[:len(history)-1] // not answered: not part of the conversation
			fmt.Fprintf(out, "\n[%v]\n", err)
			continue
		}
		history = append(history, client.Message{Role: "assistant", Content: answer})
	}
}

// ask streams one answer to out and returns its text.
func ask(ctx context.Context, c *client.Client, model string, history []client.Message, out io.Writer, stop <-chan struct{}) (string, error) {
	s, err := c.Chat(ctx, client.ChatRequest{Model: model, Messages: history})
	if err != nil {
		return "", err
	}
	defer s.Close()
	// Ctrl-C while the answer streams: cancel it on the server; the loop
	// below then reads up to the server's closing event.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
			s.Cancel(ctx)
		case <-done:
		}
	}()
	var text strings.Builder
	for d, err := range s.Deltas() {
		if errors.Is(err, client.ErrCancelled) {
			fmt.Fprintln(out, " [stopped]")
			return text.String(), nil
		}
		if err != nil {
			return "", err
		}
		text.WriteString(d.Content)
		fmt.Fprint(out, d.Content)
	}
	fmt.Fprintln(out)
	return text.String(), nil
}
