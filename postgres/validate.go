package postgres

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// The checks of what callers write are internal/convcheck's, which the
// SQLite store shares. What is here is the PostgreSQL store's own: IDs
// that its text columns could not even be asked for, and the errors of
// lookups.

// textOK reports whether PostgreSQL's text can hold s: an ID that it
// cannot is no ID of the store's, and is not sent to be refused there.
func textOK(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func invalid(param, format string, args ...any) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Message: fmt.Sprintf(format, args...)}
}

func notFound(what, id string) error {
	return &sluice.Error{Code: sluice.ENOTFOUND, Message: fmt.Sprintf("No %s %s.", what, clip(id))}
}

// clip quotes a caller's ID, short enough for a message.
func clip(id string) string { return fmt.Sprintf("%.64q", id) }

// checkItems checks a batch to add and returns it as the store keeps it,
// with the bytes of its texts. In a new conversation (fresh) no item may
// name a parent.
func checkItems(items []sluice.Item, fresh bool) ([]sluice.Item, int, error) {
	checked, bytes, err := convcheck.Items(items, !fresh)
	if err != nil {
		return nil, 0, err
	}
	for _, it := range checked {
		if err := convcheck.Text("parent_id", it.ParentID); err != nil {
			return nil, 0, err
		}
	}
	return checked, bytes, convcheck.Bounds(len(checked), bytes)
}
