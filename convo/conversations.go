package convo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// ItemInput is a message as a client sends it (POST /v1/conversations and
// .../items): content is a string or an array of parts (input_text,
// output_text or text), as OpenAI's SDKs send either.
type ItemInput struct {
	Type     string          `json:"type"` // "message" or absent
	Role     string          `json:"role"`
	Content  json.RawMessage `json:"content"`
	ParentID string          `json:"parent_id"`
}

// CreateInput is the body of POST /v1/conversations.
type CreateInput struct {
	Items    []ItemInput       `json:"items"`
	Metadata map[string]string `json:"metadata"`
	Title    string            `json:"title"`
}

// PatchInput is the body of POST /v1/conversations/{id}: absent fields stay.
type PatchInput struct {
	Title    *string           `json:"title"`
	Metadata map[string]string `json:"metadata"`
}

// ItemsInput is the body of POST /v1/conversations/{id}/items.
type ItemsInput struct {
	Items []ItemInput `json:"items"`
}

var itemRoles = map[string]bool{"user": true, "assistant": true, "system": true, "developer": true}

// toItems validates in and turns it into items to store; param names the
// array for errors, and parents says whether items may name a parent.
func toItems(in []ItemInput, param string, parents bool) ([]sluice.Item, error) {
	if len(in) > MaxItemsPerRequest {
		return nil, invalid(param, "too_many_items", fmt.Sprintf("Too many items: at most %d in one request.", MaxItemsPerRequest))
	}
	out := make([]sluice.Item, len(in))
	for i, it := range in {
		p := param + "[" + strconv.Itoa(i) + "]"
		if it.Type != "" && it.Type != "message" {
			return nil, invalid(p+".type", "invalid_value", "Invalid value for '"+p+".type': only 'message' items are kept.")
		}
		if it.Role == "" {
			return nil, invalid(p+".role", "missing_required_parameter", "Missing required parameter: '"+p+".role'.")
		}
		if !itemRoles[it.Role] {
			return nil, invalid(p+".role", "invalid_value", "Invalid value for '"+p+".role': "+strconv.Quote(clip(it.Role))+
				" is not one of user, assistant, system, developer.")
		}
		text, err := contentText(it.Content, p+".content")
		if err != nil {
			return nil, err
		}
		if it.ParentID != "" {
			if !parents {
				return nil, invalid(p+".parent_id", "invalid_value", "'"+p+".parent_id' is not allowed here: the items of a new conversation follow each other.")
			}
			if err := checkItemID(it.ParentID, p+".parent_id"); err != nil {
				return nil, err
			}
		}
		out[i] = sluice.Item{Role: it.Role, Text: text, ParentID: it.ParentID, Status: sluice.StatusCompleted}
	}
	return out, nil
}

// contentText returns the text of a content field: a string, or the text
// of an array of text parts.
func contentText(raw json.RawMessage, param string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", invalid(param, "missing_required_parameter", "Missing required parameter: '"+param+"'.")
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid(param, "invalid_json", "Invalid string in '"+param+"'.")
		}
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil {
		return "", invalid(param, "invalid_type", "Invalid type for '"+param+"': expected a string or an array of text parts.")
	}
	var sb strings.Builder
	for i, pt := range parts {
		pp := param + "[" + strconv.Itoa(i) + "]"
		switch pt.Type {
		case "input_text", "output_text", "text":
		default:
			return "", invalid(pp+".type", "invalid_value", "Invalid value for '"+pp+".type': "+strconv.Quote(clip(pt.Type))+
				" is not one of input_text, output_text, text (only text is kept).")
		}
		if pt.Text == nil {
			return "", invalid(pp+".text", "missing_required_parameter", "Missing required parameter: '"+pp+".text'.")
		}
		sb.WriteString(*pt.Text)
	}
	return sb.String(), nil
}

// checkHead validates a title and metadata against their bounds.
func checkHead(title *string, md map[string]string) error {
	if title != nil {
		if len(*title) > sluice.MaxTitleBytes {
			return invalid("title", "title_too_long", fmt.Sprintf("The title is longer than %d bytes.", sluice.MaxTitleBytes))
		}
		if !utf8.ValidString(*title) {
			return invalid("title", "invalid_value", "The title is not valid UTF-8.")
		}
	}
	if len(md) > sluice.MaxMetadataPairs {
		return invalid("metadata", "too_many_metadata_pairs", fmt.Sprintf("Too many metadata pairs: at most %d.", sluice.MaxMetadataPairs))
	}
	for k, v := range md {
		if len(k) > MaxMetadataKey || k == "" {
			return invalid("metadata", "invalid_metadata_key", fmt.Sprintf("Metadata keys are 1 to %d bytes long.", MaxMetadataKey))
		}
		if len(v) > MaxMetadataValue {
			return invalid("metadata."+clip(k), "metadata_value_too_long", fmt.Sprintf("Metadata values are at most %d bytes long.", MaxMetadataValue))
		}
	}
	return nil
}

// Create makes a conversation for owner.
func (s *Service) Create(ctx context.Context, owner string, in CreateInput) (sluice.Conversation, []sluice.Item, error) {
	if err := checkHead(&in.Title, in.Metadata); err != nil {
		return sluice.Conversation{}, nil, err
	}
	items, err := toItems(in.Items, "items", false)
	if err != nil {
		return sluice.Conversation{}, nil, err
	}
	c, stored, err := s.store.CreateConversation(ctx, sluice.Conversation{Owner: owner, Title: in.Title, Metadata: in.Metadata}, items)
	if err != nil {
		return c, nil, err
	}
	s.publish(owner, "conversation.created", c)
	return c, stored, nil
}

// Get returns conversation id.
func (s *Service) Get(ctx context.Context, owner, id string) (sluice.Conversation, error) {
	return s.own(ctx, owner, id)
}

// Update changes a conversation's title or metadata.
func (s *Service) Update(ctx context.Context, owner, id string, in PatchInput) (sluice.Conversation, error) {
	if _, err := s.own(ctx, owner, id); err != nil {
		return sluice.Conversation{}, err
	}
	if err := checkHead(in.Title, in.Metadata); err != nil {
		return sluice.Conversation{}, err
	}
	c, err := s.store.UpdateConversation(ctx, id, sluice.ConversationPatch{Title: in.Title, Metadata: in.Metadata})
	if err != nil {
		return c, err
	}
	s.publish(owner, "conversation.updated", c)
	return c, nil
}

// Delete removes a conversation and its messages.
func (s *Service) Delete(ctx context.Context, owner, id string) error {
	c, err := s.own(ctx, owner, id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteConversation(ctx, id); err != nil {
		return err
	}
	s.publish(owner, "conversation.deleted", c)
	return nil
}

// ListInput selects a page of an owner's conversations.
type ListInput struct {
	Limit  int // 0: DefaultPageLimit
	After  string
	Search string
}

// List returns a page of owner's conversations, newest change first, and
// whether more follow.
func (s *Service) List(ctx context.Context, owner string, in ListInput) ([]sluice.Conversation, bool, error) {
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, false, err
	}
	if in.After != "" {
		if err := checkConvID(in.After, "after"); err != nil {
			return nil, false, err
		}
	}
	if len(in.Search) > MaxSearchBytes {
		return nil, false, invalid("q", "search_too_long", fmt.Sprintf("The search text is longer than %d bytes.", MaxSearchBytes))
	}
	return s.store.Conversations(ctx, sluice.ConversationQuery{Owner: owner, Search: in.Search, After: in.After, Limit: limit})
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageLimit, nil
	case n < 1 || n > MaxPageLimit:
		return 0, invalid("limit", "invalid_value", fmt.Sprintf("Invalid value for 'limit': it must be between 1 and %d.", MaxPageLimit))
	}
	return n, nil
}

// ItemsPage selects a page of a conversation's items.
type ItemsPage struct {
	Limit int // 0: DefaultPageLimit
	After string
	Asc   bool // oldest first; newest first otherwise, OpenAI's default
}

// Items returns a page of conversation id's items and whether more follow.
func (s *Service) Items(ctx context.Context, owner, id string, in ItemsPage) ([]sluice.Item, bool, error) {
	if _, err := s.own(ctx, owner, id); err != nil {
		return nil, false, err
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, false, err
	}
	if in.After != "" {
		if err := checkItemID(in.After, "after"); err != nil {
			return nil, false, err
		}
	}
	return s.store.Items(ctx, id, sluice.ItemQuery{After: in.After, Limit: limit, Desc: !in.Asc})
}

// AddItems appends items to conversation id.
func (s *Service) AddItems(ctx context.Context, owner, id string, in ItemsInput) ([]sluice.Item, error) {
	if _, err := s.own(ctx, owner, id); err != nil {
		return nil, err
	}
	if len(in.Items) == 0 {
		return nil, invalid("items", "empty_array", "'items' must be a non-empty array of items.")
	}
	items, err := toItems(in.Items, "items", true)
	if err != nil {
		return nil, err
	}
	stored, err := s.store.AddItems(ctx, id, items)
	if err != nil {
		return nil, err
	}
	s.changed(ctx, owner, id)
	return stored, nil
}

// Item returns one item of conversation id.
func (s *Service) Item(ctx context.Context, owner, id, itemID string) (sluice.Item, error) {
	if _, err := s.own(ctx, owner, id); err != nil {
		return sluice.Item{}, err
	}
	if err := checkItemID(itemID, "item_id"); err != nil {
		return sluice.Item{}, err
	}
	return s.store.Item(ctx, id, itemID)
}

// DeleteItem removes one item of conversation id (its children move under
// its parent) and returns the conversation.
func (s *Service) DeleteItem(ctx context.Context, owner, id, itemID string) (sluice.Conversation, error) {
	if _, err := s.own(ctx, owner, id); err != nil {
		return sluice.Conversation{}, err
	}
	if err := checkItemID(itemID, "item_id"); err != nil {
		return sluice.Conversation{}, err
	}
	if err := s.store.DeleteItem(ctx, id, itemID); err != nil {
		return sluice.Conversation{}, err
	}
	c, err := s.store.Conversation(ctx, id)
	if err != nil {
		return c, err
	}
	s.publish(owner, "conversation.updated", c)
	return c, nil
}

// changed tells owner's feed that conversation id changed, reading its
// new time from the store (a failure only costs the event).
func (s *Service) changed(ctx context.Context, owner, id string) {
	if s.logs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), feedTimeout)
	defer cancel()
	c, err := s.store.Conversation(ctx, id)
	switch {
	case sluice.ErrorCode(err) == sluice.ENOTFOUND:
		return // deleted meanwhile: the feed told of that
	case err != nil:
		s.log.Warn("conversations: cannot read a conversation to tell its feed", "id", id, "err", err)
		return
	}
	s.publish(owner, "conversation.updated", c)
}
