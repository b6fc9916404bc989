package convo

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// The extra fields of a chat completion request that continue a
// conversation. They are taken out of the request before a model sees it.
const (
	FieldConversation = "conversation" // "conv_..." or {"id":"conv_..."}, as OpenAI's Responses API takes it
	FieldParentID     = "parent_id"    // the message to answer under; default: the conversation's current one
)

// Prepare readies a chat that names a conversation (FieldConversation) for
// owner: it checks that owner may continue it, that the chat keeps it
// within its bounds, takes the conversation fields out of req's Extra,
// and puts the stored branch it continues before req's messages, so that
// the model answers the whole conversation. An answer of the branch still
// in progress is read from its stream while the log holds it, not from
// its last stored batch: a client that sends its next message the moment
// the answer ends gets it answered whole. Empty messages answer the
// parent (a user message) again: the new answer is a sibling of the
// earlier ones. A request that names no conversation is left as it is,
// and Prepare returns nil.
//
// What it returns is to be called once the generation has started: it
// names the request's messages and the answer (in progress, with the
// generation's ID), returns the conversation's and the answer's IDs at
// once, and stores them on a goroutine of the Service's, after which a
// recorder stores the answer as it streams. Nothing of that write is on
// the way to the first token; a write that fails is tried again as the
// recorder's end is, then logged, and the stream goes on. A chat on the
// same conversation waits in Prepare (up to orderWait) for this node's
// earlier chat to be stored, so that it continues after it. The function
// fails only when the service is shutting down: the caller then stops the
// generation.
func (s *Service) Prepare(ctx context.Context, owner string, req *sluice.ChatRequest) (
	func(ctx context.Context, g *gen.Generation) (conversationID, messageID string, err error), error) {
	rawConv, named := req.Extra[FieldConversation]
	rawParent, parented := req.Extra[FieldParentID]
	if !named && !parented {
		return nil, nil
	}
	delete(req.Extra, FieldConversation)
	delete(req.Extra, FieldParentID)
	if !named {
		return nil, invalid(FieldParentID, "missing_required_parameter", "'parent_id' needs 'conversation': name the conversation it belongs to.")
	}
	id, err := conversationRef(rawConv)
	if err != nil {
		return nil, err
	}
	parent := ""
	if parented {
		if err := json.Unmarshal(rawParent, &parent); err != nil {
			return nil, invalid(FieldParentID, "invalid_type", "Invalid type for 'parent_id': expected a string.")
		}
		if err := checkItemID(parent, FieldParentID); err != nil {
			return nil, err
		}
	}
	for i, m := range req.Messages {
		if !itemRoles[m.Role] {
			p := "messages[" + strconv.Itoa(i) + "].role"
			return nil, invalid(p, "invalid_value", "A chat with a conversation keeps only user, assistant, system and developer messages; '"+p+"' is "+strconv.Quote(m.Role)+".")
		}
	}

	s.awaitStored(ctx, id)
	// One read for the owner, the bounds and the branch.
	cont, err := s.store.Continuation(ctx, id, parent)
	if err != nil {
		return nil, err
	}
	if cont.Conversation.Owner != owner {
		return nil, errForeign
	}
	branch := cont.Branch
	if parent != "" && len(branch) == 0 {
		return nil, &sluice.Error{Code: sluice.EINVALID, Param: FieldParentID, Kind: "invalid_parent",
			Message: "The message " + parent + " is not in conversation " + id + "."}
	}
	parent = ""
	if len(branch) > 0 {
		parent = branch[len(branch)-1].ID
	}
	regenerate := len(req.Messages) == 0
	if regenerate && (len(branch) == 0 || branch[len(branch)-1].Role != "user") {
		return nil, invalid("messages", "empty_array",
			"'messages' may be empty only to answer a user message again: name it in 'parent_id' (or make it the conversation's current message).")
	}

	// What will be stored, checked now: once the client has its answer's
	// ID, a refusal could only be logged.
	news := req.Messages
	items := make([]sluice.Item, 0, len(news)+1)
	for _, m := range news {
		items = append(items, sluice.Item{Role: m.Role, Text: m.Text(), Status: sluice.StatusCompleted})
	}
	items = append(items, sluice.Item{Role: "assistant", Status: sluice.StatusInProgress, Model: req.Model})
	_, size, err := convcheck.Items(items, true)
	if err != nil {
		return nil, err
	}
	if err := convcheck.Bounds(cont.Items+len(items), cont.Bytes+size); err != nil {
		return nil, err
	}

	s.fromStreams(ctx, branch)
	input := make([]sluice.Message, 0, len(branch)+len(news))
	for _, it := range branch {
		if it.Role == "assistant" && it.Text == "" {
			continue // an answer that failed before its first word says nothing to the model
		}
		content, _ := json.Marshal(it.Text) // a string: cannot fail
		input = append(input, sluice.Message{Role: it.Role, Content: content})
	}
	req.Messages = append(input, news...)

	return func(ctx context.Context, g *gen.Generation) (string, string, error) {
		for i := range items {
			items[i].ID = convcheck.NewItemID() // the rest chain under the first
		}
		items[0].ParentID = parent // "" in an empty conversation: a root
		msg := items[len(items)-1].ID
		items[len(items)-1].StreamID = g.ID
		if !s.enroll() {
			return "", "", errShuttingDown
		}
		// The chat is stored even if its client has just gone: its answer
		// runs on for a later reader, as every answer does.
		prev, done := s.beginStore(id)
		go s.storeChat(prev, done, g, owner, id, items)
		return id, msg, nil
	}, nil
}

// conversationRef reads the conversation field: an ID, or an object with
// one.
func conversationRef(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var id string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", invalid(FieldConversation, "invalid_json", "Invalid string in 'conversation'.")
		}
	case len(raw) > 0 && raw[0] == '{':
		var obj struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.ID == "" {
			return "", invalid(FieldConversation+".id", "missing_required_parameter", "Missing required parameter: 'conversation.id'.")
		}
		id = obj.ID
	default:
		return "", invalid(FieldConversation, "invalid_type", "Invalid type for 'conversation': expected a conversation ID or an object with its 'id'.")
	}
	return id, checkConvID(id, FieldConversation)
}

var errShuttingDown = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "server_shutting_down",
	Message: "The server is shutting down; try again shortly."}

// enroll counts a recorder about to start, unless the service is shutting
// down.
func (s *Service) enroll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Service) unenroll() { s.wg.Done() }
