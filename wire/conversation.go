package wire

import (
	"github.com/sluice-dev/sluice"
)

// The JSON of conversations follows OpenAI's Conversations API
// ("object":"conversation", messages as items of content parts), so that
// its SDKs and habits carry over; Sluice's additions (title, updated_at,
// current_id, parent_id, the assistant's model, stream_id, usage, error)
// are fields those SDKs ignore. See docs/conversations.md.

// Conversation is a conversation's head as the API answers it.
type Conversation struct {
	ID        string            `json:"id"`
	Object    string            `json:"object"` // "conversation"
	CreatedAt int64             `json:"created_at"`
	Metadata  map[string]string `json:"metadata"` // {} rather than null, as OpenAI answers
	Title     string            `json:"title"`
	UpdatedAt int64             `json:"updated_at"`
	CurrentID *string           `json:"current_id"`
}

// ConversationOf renders c.
func ConversationOf(c sluice.Conversation) Conversation {
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return Conversation{ID: c.ID, Object: "conversation", CreatedAt: c.CreatedAt.Unix(), Metadata: md,
		Title: c.Title, UpdatedAt: c.UpdatedAt.Unix(), CurrentID: optional(c.CurrentID)}
}

// Item is one message of a conversation as the API answers it.
type Item struct {
	Type      string        `json:"type"` // "message"
	ID        string        `json:"id"`
	Status    string        `json:"status"`
	Role      string        `json:"role"`
	Content   []ContentPart `json:"content"`
	ParentID  *string       `json:"parent_id"`
	CreatedAt int64         `json:"created_at"`
	// Assistant messages only.
	Model    string            `json:"model,omitempty"`
	StreamID string            `json:"stream_id,omitempty"`
	Usage    *sluice.Usage     `json:"usage,omitempty"`
	Error    *sluice.ItemError `json:"error,omitempty"`
}

// ContentPart is one part of an item's content: input_text for what people
// (and systems) wrote, output_text for a model's answer.
type ContentPart struct {
	Type        string    `json:"type"`
	Text        string    `json:"text"`
	Annotations *[]string `json:"annotations,omitempty"` // [] on output_text, as OpenAI answers; absent otherwise
}

var noAnnotations = []string{}

// ItemOf renders it.
func ItemOf(it sluice.Item) Item {
	part := ContentPart{Type: "input_text", Text: it.Text}
	if it.Role == "assistant" {
		part = ContentPart{Type: "output_text", Text: it.Text, Annotations: &noAnnotations}
	}
	status := it.Status
	if status == "" {
		status = sluice.StatusCompleted
	}
	out := Item{Type: "message", ID: it.ID, Status: string(status), Role: it.Role, Content: []ContentPart{part},
		ParentID: optional(it.ParentID), CreatedAt: it.CreatedAt.Unix()}
	if it.Role == "assistant" {
		out.Model, out.StreamID, out.Usage, out.Error = it.Model, it.StreamID, it.Usage, it.Error
	}
	return out
}

// List is a page of a list, as OpenAI answers lists.
type List[T any] struct {
	Object  string  `json:"object"` // "list"
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// ConversationList renders a page of conversations.
func ConversationList(cs []sluice.Conversation, more bool) List[Conversation] {
	l := List[Conversation]{Object: "list", Data: make([]Conversation, len(cs)), HasMore: more}
	for i, c := range cs {
		l.Data[i] = ConversationOf(c)
	}
	if len(cs) > 0 {
		l.FirstID, l.LastID = optional(cs[0].ID), optional(cs[len(cs)-1].ID)
	}
	return l
}

// ItemList renders a page of items.
func ItemList(its []sluice.Item, more bool) List[Item] {
	l := List[Item]{Object: "list", Data: make([]Item, len(its)), HasMore: more}
	for i, it := range its {
		l.Data[i] = ItemOf(it)
	}
	if len(its) > 0 {
		l.FirstID, l.LastID = optional(its[0].ID), optional(its[len(its)-1].ID)
	}
	return l
}

// Deleted answers the deletion of a conversation.
type Deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "conversation.deleted"
	Deleted bool   `json:"deleted"`
}

// ConversationEvent is the data of one event of the change feed
// (GET /v1/conversations/events).
type ConversationEvent struct {
	Type      string `json:"type"` // conversation.created, conversation.updated or conversation.deleted
	ID        string `json:"id"`
	UpdatedAt int64  `json:"updated_at"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
