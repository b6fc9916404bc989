package postgres

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// The checks of what callers write, made before any statement: PostgreSQL
// would refuse text that is not UTF-8 or holds a NUL byte with an error
// that says nothing to a user, and the bounds are the contract's.

// textOK reports whether PostgreSQL's text (and jsonb) can hold s.
func textOK(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func invalid(param, format string, args ...any) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &sluice.Error{Code: sluice.ETOOLARGE, Message: fmt.Sprintf(format, args...)}
}

func notFound(what, id string) error {
	return &sluice.Error{Code: sluice.ENOTFOUND, Message: fmt.Sprintf("No %s %q.", what, clip(id))}
}

// clip keeps a caller's ID short enough to quote in a message.
func clip(id string) string {
	if len(id) > 64 || !utf8.ValidString(id) {
		return fmt.Sprintf("%.64q", id)
	}
	return id
}

func checkTitle(title string) error {
	if len(title) > sluice.MaxTitleBytes {
		return invalid("title", "The title is %d bytes; at most %d are allowed.", len(title), sluice.MaxTitleBytes)
	}
	if !textOK(title) {
		return invalid("title", "The title must be UTF-8 text without NUL characters.")
	}
	return nil
}

func checkMetadata(m map[string]string) error {
	if len(m) > sluice.MaxMetadataPairs {
		return invalid("metadata", "The metadata has %d pairs; at most %d are allowed.", len(m), sluice.MaxMetadataPairs)
	}
	for k, v := range m {
		if !textOK(k) || !textOK(v) {
			return invalid("metadata", "Metadata keys and values must be UTF-8 text without NUL characters.")
		}
	}
	return nil
}

func checkConversation(c sluice.Conversation) error {
	if !textOK(c.Owner) {
		return invalid("", "The owner must be UTF-8 text without NUL characters.")
	}
	if err := checkTitle(c.Title); err != nil {
		return err
	}
	return checkMetadata(c.Metadata)
}

var roles = []string{"user", "assistant", "system", "developer"}

func knownStatus(s sluice.MessageStatus) bool {
	switch s {
	case sluice.StatusInProgress, sluice.StatusCompleted, sluice.StatusCancelled, sluice.StatusFailed, sluice.StatusInterrupted:
		return true
	}
	return false
}

// checkItems checks a batch to add and returns the total bytes of its
// texts. In a new conversation (fresh) no item may name a parent.
func checkItems(items []sluice.Item, fresh bool) (int64, error) {
	if len(items) > sluice.MaxConversationItems {
		return 0, tooLarge("A conversation holds at most %d items.", sluice.MaxConversationItems)
	}
	var bytes int64
	for i, it := range items {
		param := fmt.Sprintf("items[%d]", i)
		known := false
		for _, r := range roles {
			known = known || it.Role == r
		}
		if !known {
			return 0, invalid(param+".role", "Item %d has the role %q; it must be one of %s.", i, clip(it.Role), strings.Join(roles, ", "))
		}
		if it.Status != "" && !knownStatus(it.Status) {
			return 0, invalid(param+".status", "Item %d has the unknown status %q.", i, clip(string(it.Status)))
		}
		if it.Role != "assistant" && it.Status != "" && it.Status != sluice.StatusCompleted {
			return 0, invalid(param+".status", "Item %d is a %s message; only an assistant message may be %s.", i, it.Role, it.Status)
		}
		if fresh && it.ParentID != "" {
			return 0, invalid(param+".parent_id", "Item %d names a parent, but a new conversation has no items to be one.", i)
		}
		if !textOK(it.Text) || !textOK(it.Model) || !textOK(it.StreamID) || !textOK(it.ParentID) || !errorOK(it.Error) {
			return 0, invalid(param, "Item %d holds text that is not UTF-8 or has NUL characters.", i)
		}
		bytes += int64(len(it.Text))
	}
	if bytes > sluice.MaxConversationBytes {
		return 0, tooLarge("A conversation holds at most %d bytes of text.", sluice.MaxConversationBytes)
	}
	return bytes, nil
}

func errorOK(e *sluice.ItemError) bool {
	return e == nil || textOK(e.Code) && textOK(e.Kind) && textOK(e.Message)
}

func checkUpdate(u sluice.MessageUpdate) error {
	if u.Status != "" && !knownStatus(u.Status) {
		return invalid("status", "The unknown status %q.", clip(string(u.Status)))
	}
	if !textOK(u.Text) || !errorOK(u.Error) {
		return invalid("", "A message's text must be UTF-8 without NUL characters.")
	}
	return nil
}

// pageLimit checks a page's Limit: 0 is 20, as OpenAI's default.
func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return 20, nil
	case limit < 0 || limit > 100:
		return 0, invalid("limit", "The limit must be between 1 and 100; it is %d.", limit)
	}
	return limit, nil
}

// newID returns prefix and 32 random hex digits.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
