package convo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// Export is a conversation written out as a file.
type Export struct {
	Body        []byte
	ContentType string
	Filename    string
}

// ExportJSON is the JSON export: the conversation with every item, oldest
// first, in the API's shapes, so that it can be read back with the API.
type ExportJSON struct {
	wire.Conversation
	Items []wire.Item `json:"items"`
}

// Export writes conversation id out in format "json" (the default) or
// "markdown" (the current branch, as people read it).
func (s *Service) Export(ctx context.Context, owner, id, format string) (Export, error) {
	c, err := s.own(ctx, owner, id)
	if err != nil {
		return Export{}, err
	}
	switch format {
	case "", "json":
		items, err := s.all(ctx, id)
		if err != nil {
			return Export{}, err
		}
		out := ExportJSON{Conversation: wire.ConversationOf(c), Items: make([]wire.Item, len(items))}
		for i, it := range items {
			out.Items[i] = wire.ItemOf(it)
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return Export{}, err
		}
		return Export{Body: append(b, '\n'), ContentType: "application/json", Filename: c.ID + ".json"}, nil
	case "markdown", "md":
		var branch []sluice.Item
		if c.CurrentID != "" {
			if branch, err = s.store.Branch(ctx, id, c.CurrentID); err != nil {
				return Export{}, err
			}
		}
		return Export{Body: markdown(c, branch), ContentType: "text/markdown; charset=utf-8", Filename: c.ID + ".md"}, nil
	}
	return Export{}, invalid("format", "invalid_value", "Invalid value for 'format': "+clip(format)+" is neither json nor markdown.")
}

// all returns every item of conversation id, oldest first.
func (s *Service) all(ctx context.Context, id string) ([]sluice.Item, error) {
	var out []sluice.Item
	after := ""
	for {
		page, more, err := s.store.Items(ctx, id, sluice.ItemQuery{After: after, Limit: MaxPageLimit})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

var roleNames = map[string]string{"user": "User", "assistant": "Assistant", "system": "System", "developer": "Developer"}

// markdown writes a branch as a Markdown document: a heading per message,
// and a note under an answer that did not complete.
func markdown(c sluice.Conversation, branch []sluice.Item) []byte {
	var b strings.Builder
	title := c.Title
	if title == "" {
		title = "Conversation " + c.ID
	}
	fmt.Fprintf(&b, "# %s\n\n", oneLine(title))
	fmt.Fprintf(&b, "_%s · created %s · updated %s_\n", c.ID, c.CreatedAt.UTC().Format(time.RFC3339), c.UpdatedAt.UTC().Format(time.RFC3339))
	for _, it := range branch {
		name := roleNames[it.Role]
		if it.Role == "assistant" && it.Model != "" {
			name += " (" + oneLine(it.Model) + ")"
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", name, strings.TrimRight(it.Text, "\n"))
		switch it.Status {
		case sluice.StatusInProgress:
			b.WriteString("\n_(still being written)_\n")
		case sluice.StatusCancelled:
			b.WriteString("\n_(stopped before it was complete)_\n")
		case sluice.StatusInterrupted:
			b.WriteString("\n_(interrupted: the server writing it was lost)_\n")
		case sluice.StatusFailed:
			msg := "failed"
			if it.Error != nil {
				msg = "failed: " + oneLine(it.Error.Message)
			}
			fmt.Fprintf(&b, "\n_(%s)_\n", msg)
		}
	}
	return []byte(b.String())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
