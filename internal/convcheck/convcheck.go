// Package convcheck holds what every sluice.ConversationStore does the same
// way before it writes: the checks of its input, its bounds and the IDs it
// gives. SQLite and PostgreSQL use it so that they refuse the same input
// with the same error (internal/convtest holds them to it), and neither
// holds a copy of the other's rules.
package convcheck

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// Page sizes: a Limit of 0 asks for DefaultLimit (OpenAI's default).
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Bounds of one metadata pair, as OpenAI's metadata has them: with
// sluice.MaxMetadataPairs they bound a conversation's head.
const (
	MaxMetadataKeyBytes   = 64
	MaxMetadataValueBytes = 512
)

// NewConversationID returns "conv_" and 32 random hex digits.
func NewConversationID() string { return "conv_" + randomHex() }

// NewItemID returns "msg_" and 32 random hex digits.
func NewItemID() string { return "msg_" + randomHex() }

// ItemID reports whether id has the shape of NewItemID's IDs.
func ItemID(id string) bool {
	if len(id) != len("msg_")+32 || !strings.HasPrefix(id, "msg_") {
		return false
	}
	for _, c := range id[len("msg_"):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Conflict is the error of an item whose ID is taken.
func Conflict() error {
	return &sluice.Error{Code: sluice.ECONFLICT, Kind: "item_exists", Param: "id",
		Message: "An item of that ID exists."}
}

func randomHex() string {
	var b [16]byte
	rand.Read(b[:]) // never fails: it crashes the program first
	return hex.EncodeToString(b[:])
}

// Limit returns the page size that n asks for, or EINVALID.
func Limit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultLimit, nil
	case n < 0 || n > MaxLimit:
		return 0, &sluice.Error{Code: sluice.EINVALID, Param: "limit",
			Message: "limit must be between 1 and 100."}
	}
	return n, nil
}

// Head checks a conversation's title and metadata (either may be left out:
// a nil title or a nil map is not checked).
func Head(title *string, meta map[string]string) error {
	if title != nil {
		if len(*title) > sluice.MaxTitleBytes {
			return &sluice.Error{Code: sluice.EINVALID, Param: "title",
				Message: "The title is longer than 512 bytes."}
		}
		if err := Text("title", *title); err != nil {
			return err
		}
	}
	if len(meta) > sluice.MaxMetadataPairs {
		return &sluice.Error{Code: sluice.EINVALID, Param: "metadata",
			Message: "metadata holds more than 16 pairs."}
	}
	for k, v := range meta {
		if len(k) > MaxMetadataKeyBytes || len(v) > MaxMetadataValueBytes {
			return &sluice.Error{Code: sluice.EINVALID, Param: "metadata",
				Message: "metadata keys are at most 64 bytes long, and values at most 512."}
		}
		if err := Text("metadata", k); err != nil {
			return err
		}
		if err := Text("metadata", v); err != nil {
			return err
		}
	}
	return nil
}

// Text refuses text that is not valid UTF-8 or holds a NUL byte: both
// stores keep text as text, and PostgreSQL's cannot hold either.
func Text(param, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return &sluice.Error{Code: sluice.EINVALID, Param: param,
			Message: "The " + param + " must be UTF-8 text without NUL characters."}
	}
	return nil
}

// Items checks items to be stored and returns copies as a store keeps them
// (the store's fields cleared but for an ID the caller gave, which must be
// one NewItemID could have made; a missing status made StatusCompleted),
// with the bytes of their texts. A ParentID is EINVALID unless parents is true;
// whether it names an item of the conversation is the store's to check.
func Items(items []sluice.Item, parents bool) ([]sluice.Item, int, error) {
	if len(items) > sluice.MaxConversationItems {
		return nil, 0, TooLarge(len(items), 0)
	}
	out := make([]sluice.Item, len(items))
	bytes := 0
	named := map[string]bool{}
	for i, it := range items {
		switch it.Role {
		case "user", "assistant", "system", "developer":
		default:
			return nil, 0, &sluice.Error{Code: sluice.EINVALID, Param: "role",
				Message: "role must be user, assistant, system or developer."}
		}
		switch {
		case it.Status == "":
			it.Status = sluice.StatusCompleted
		case !known(it.Status):
			return nil, 0, badStatus()
		case it.Role != "assistant" && it.Status != sluice.StatusCompleted:
			return nil, 0, &sluice.Error{Code: sluice.EINVALID, Param: "status",
				Message: "Only an assistant message can be other than completed."}
		}
		if it.ParentID != "" && !parents {
			return nil, 0, &sluice.Error{Code: sluice.EINVALID, Param: "parent_id",
				Message: "A new conversation has no message to be a parent."}
		}
		for _, f := range [][2]string{{"content", it.Text}, {"model", it.Model}, {"stream_id", it.StreamID}} {
			if err := Text(f[0], f[1]); err != nil {
				return nil, 0, err
			}
		}
		if it.Error != nil {
			e := *it.Error
			it.Error = &e
			if err := Text("error", e.Code+e.Kind+e.Message); err != nil {
				return nil, 0, err
			}
		}
		if it.Usage != nil {
			u := *it.Usage
			it.Usage = &u
		}
		if it.ID != "" {
			if !ItemID(it.ID) {
				return nil, 0, &sluice.Error{Code: sluice.EINVALID, Param: "id",
					Message: "An item's ID is msg_ and 32 hex digits."}
			}
			if named[it.ID] {
				return nil, 0, &sluice.Error{Code: sluice.EINVALID, Param: "id",
					Message: "Two items of one batch have the same ID."}
			}
			named[it.ID] = true
		}
		it.ConversationID, it.Seq = "", 0
		it.CreatedAt, it.UpdatedAt = time.Time{}, time.Time{}
		bytes += len(it.Text)
		out[i] = it
	}
	return out, bytes, nil
}

// Update checks a message update.
func Update(u sluice.MessageUpdate) error {
	if u.Status != "" && !known(u.Status) {
		return badStatus()
	}
	if err := Text("content", u.Text); err != nil {
		return err
	}
	if u.Error != nil {
		return Text("error", u.Error.Code+u.Error.Kind+u.Error.Message)
	}
	return nil
}

// Bounds returns ETOOLARGE when a conversation of items messages whose texts
// hold bytes is over its bounds.
func Bounds(items, bytes int) error {
	if items > sluice.MaxConversationItems || bytes > sluice.MaxConversationBytes {
		return TooLarge(items, bytes)
	}
	return nil
}

// TooLarge is the error of a conversation over its bounds.
func TooLarge(items, bytes int) error {
	if items > sluice.MaxConversationItems {
		return &sluice.Error{Code: sluice.ETOOLARGE, Kind: "conversation_too_large",
			Message: "A conversation holds at most 10000 messages."}
	}
	return &sluice.Error{Code: sluice.ETOOLARGE, Kind: "conversation_too_large",
		Message: "A conversation holds at most 16 MiB of text."}
}

// Fold is what search matches on: a text and a query alike are folded so,
// and the query is found in the text as a plain substring.
func Fold(s string) string { return strings.ToLower(s) }

func known(s sluice.MessageStatus) bool {
	switch s {
	case sluice.StatusInProgress, sluice.StatusCompleted, sluice.StatusCancelled, sluice.StatusFailed, sluice.StatusInterrupted:
		return true
	}
	return false
}

func badStatus() error {
	return &sluice.Error{Code: sluice.EINVALID, Param: "status",
		Message: "status must be in_progress, completed, cancelled, failed or interrupted."}
}
