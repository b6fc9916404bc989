package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

const itemColumns = `seq, id, conversation_id, parent_id, role, text, status, model, stream_id, usage, error, created_at, updated_at`

func scanItem(row scanner) (sluice.Item, error) {
	var it sluice.Item
	var usage, ierr sql.NullString
	var created, updated int64
	err := row.Scan(&it.Seq, &it.ID, &it.ConversationID, &it.ParentID, &it.Role, &it.Text, &it.Status,
		&it.Model, &it.StreamID, &usage, &ierr, &created, &updated)
	if err != nil {
		return it, err
	}
	if usage.Valid {
		it.Usage = new(sluice.Usage)
		if err := json.Unmarshal([]byte(usage.String), it.Usage); err != nil {
			return it, err
		}
	}
	if ierr.Valid {
		it.Error = new(sluice.ItemError)
		if err := json.Unmarshal([]byte(ierr.String), it.Error); err != nil {
			return it, err
		}
	}
	it.CreatedAt, it.UpdatedAt = fromNanos(created), fromNanos(updated)
	return it, nil
}

// jsonOrNull encodes v for a nullable JSON column: NULL when v is nil.
func jsonOrNull[T any](v *T) sql.NullString {
	if v == nil {
		return sql.NullString{}
	}
	b, _ := json.Marshal(v) // plain structs always encode
	return sql.NullString{String: string(b), Valid: true}
}

// chain gives items (checked by convcheck.Items) their IDs if they have
// none, their conversation
// and times, and puts each without a parent under the one before it, the
// first under parent.
func chain(convID, parent string, items []sluice.Item, now int64) {
	for i := range items {
		it := &items[i]
		if it.ID == "" { // else the caller named it (convcheck.Items checked the name)
			it.ID = convcheck.NewItemID()
		}
		it.ConversationID = convID
		it.CreatedAt, it.UpdatedAt = fromNanos(now), fromNanos(now)
		if it.ParentID == "" {
			it.ParentID = parent
		}
		parent = it.ID
	}
}

// insertBatch is how many items one INSERT statement stores: rows by the
// hundred rather than one by one cut the cost of a big batch tenfold,
// and 13 parameters a row stays far under SQLite's limit of parameters.
const insertBatch = 100

// insertItems stores chained items and sets their Seq.
func insertItems(ctx context.Context, tx *sql.Tx, items []sluice.Item, now int64) error {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	for len(items) > 0 {
		batch := items[:min(len(items), insertBatch)]
		items = items[len(batch):]
		args := make([]any, 0, 13*len(batch))
		byID := make(map[string]*sluice.Item, len(batch))
		for i := range batch {
			it := &batch[i]
			byID[it.ID] = it
			args = append(args, it.ID, it.ConversationID, it.ParentID, it.Role, it.Text, it.Status, it.Model, it.StreamID,
				jsonOrNull(it.Usage), jsonOrNull(it.Error), now, now, now)
		}
		// Rows get their seq in the order of VALUES; RETURNING may list
		// them in any order, hence the IDs.
		rows, err := tx.QueryContext(ctx, `INSERT INTO items (id, conversation_id, parent_id, role, text, status, model, stream_id,
			usage, error, created_at, updated_at, heartbeat_at) VALUES `+row+strings.Repeat(", "+row, len(batch)-1)+` RETURNING id, seq`, args...)
		if err != nil {
			return idTaken(err)
		}
		for rows.Next() {
			var id string
			var seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				rows.Close()
				return idTaken(err)
			}
			byID[id].Seq = seq
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return idTaken(err)
		}
	}
	return nil
}

// idTaken is err, or ECONFLICT when it says that an item's ID (one the
// caller gave) is taken.
func idTaken(err error) error {
	var se *sqlite.Error
	// The only unique column an insert of items can collide on is id (seq
	// is the table's own counter).
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return convcheck.Conflict()
	}
	return err
}

// AddItems implements sluice.ConversationStore.
func (s *Store) AddItems(ctx context.Context, id string, items []sluice.Item) ([]sluice.Item, error) {
	items, bytes, err := convcheck.Items(items, true)
	if err != nil {
		return nil, err
	}
	err = s.write(ctx, "adding items", func(tx *sql.Tx) error {
		var current string
		var count, total int
		err := tx.QueryRowContext(ctx, `SELECT current_id, item_count, text_bytes FROM conversations WHERE id = ?`, id).
			Scan(&current, &count, &total)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("conversation")
		} else if err != nil {
			return err
		}
		if err := convcheck.Bounds(count+len(items), total+bytes); err != nil {
			return err
		}
		for _, it := range items {
			if it.ParentID == "" {
				continue
			}
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE id = ? AND conversation_id = ?`, it.ParentID, id).Scan(&n)
			if err != nil {
				return err
			}
			if n == 0 {
				return &sluice.Error{Code: sluice.EINVALID, Param: "parent_id",
					Message: "parent_id names no message of this conversation."}
			}
		}
		if len(items) == 0 {
			return nil
		}
		now := time.Now().UnixNano()
		chain(id, current, items, now)
		if err := insertItems(ctx, tx, items, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE conversations SET current_id = ?, item_count = item_count + ?,
			text_bytes = text_bytes + ?, updated_at = max(updated_at + 1, ?) WHERE id = ?`,
			items[len(items)-1].ID, len(items), bytes, now, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Item implements sluice.ConversationStore.
func (s *Store) Item(ctx context.Context, conversationID, itemID string) (sluice.Item, error) {
	var it sluice.Item
	err := s.read(ctx, "reading an item", func(tx *sql.Tx) (err error) {
		it, err = scanItem(tx.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM items WHERE id = ? AND conversation_id = ?`,
			itemID, conversationID))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("item")
		}
		return err
	})
	return it, err
}

// Items implements sluice.ConversationStore.
func (s *Store) Items(ctx context.Context, conversationID string, q sluice.ItemQuery) ([]sluice.Item, bool, error) {
	limit, err := convcheck.Limit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	var out []sluice.Item
	err = s.read(ctx, "listing items", func(tx *sql.Tx) error {
		if err := exists(ctx, tx, conversationID); err != nil {
			return err
		}
		from, cmp, order := int64(0), ">", "ASC"
		if q.Desc {
			from, cmp, order = 1<<62, "<", "DESC"
		}
		if q.After != "" {
			err := tx.QueryRowContext(ctx, `SELECT seq FROM items WHERE id = ? AND conversation_id = ?`, q.After, conversationID).Scan(&from)
			if errors.Is(err, sql.ErrNoRows) {
				return &sluice.Error{Code: sluice.EINVALID, Param: "after", Message: "after names no message of this conversation."}
			} else if err != nil {
				return err
			}
		}
		var err error
		out, err = queryItems(ctx, tx, `SELECT `+itemColumns+` FROM items WHERE conversation_id = ? AND seq `+cmp+` ?
			ORDER BY seq `+order+` LIMIT ?`, conversationID, from, limit+1)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	return out[:min(len(out), limit)], more, nil
}

// Branch implements sluice.ConversationStore.
func (s *Store) Branch(ctx context.Context, conversationID, itemID string) ([]sluice.Item, error) {
	var out []sluice.Item
	err := s.read(ctx, "reading a branch", func(tx *sql.Tx) (err error) {
		out, err = branch(ctx, tx, conversationID, itemID)
		if err == nil && len(out) == 0 {
			err = notFound("item")
		}
		return err
	})
	return out, err
}

// Continuation implements sluice.ConversationStore: SQLite is in the
// process, so one read transaction (one snapshot) with a statement for the
// head and one for the branch costs no round trip.
func (s *Store) Continuation(ctx context.Context, id, itemID string) (sluice.Continuation, error) {
	var out sluice.Continuation
	err := s.read(ctx, "reading a conversation to continue", func(tx *sql.Tx) error {
		c, err := scanHeadSized(tx.QueryRowContext(ctx, `SELECT `+convColumns+`, item_count, text_bytes FROM conversations WHERE id = ?`, id), &out)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("conversation")
		} else if err != nil {
			return err
		}
		out.Conversation = c
		if itemID == "" {
			itemID = c.CurrentID
		}
		if itemID == "" {
			return nil
		}
		out.Branch, err = branch(ctx, tx, id, itemID)
		return err
	})
	return out, err
}

// branch reads the path from the root to itemID, root first; none when
// itemID is not in the conversation.
func branch(ctx context.Context, tx *sql.Tx, conversationID, itemID string) ([]sluice.Item, error) {
	// Up from the item, parent by parent; a parent is always older than
	// its children, so the walk ends.
	return queryItems(ctx, tx, `WITH RECURSIVE up (id, depth) AS (
			SELECT id, 0 FROM items WHERE id = ? AND conversation_id = ?
			UNION ALL
			SELECT items.parent_id, up.depth + 1 FROM items JOIN up ON items.id = up.id
			WHERE items.parent_id != ''
		)
		SELECT `+itemColumns+` FROM items JOIN up USING (id) WHERE conversation_id = ? ORDER BY up.depth DESC`,
		itemID, conversationID, conversationID)
}

// DeleteItem implements sluice.ConversationStore.
func (s *Store) DeleteItem(ctx context.Context, conversationID, itemID string) error {
	return s.write(ctx, "deleting an item", func(tx *sql.Tx) error {
		var parent string
		var bytes int
		err := tx.QueryRowContext(ctx, `DELETE FROM items WHERE id = ? AND conversation_id = ?
			RETURNING parent_id, length(CAST(text AS BLOB))`, itemID, conversationID).Scan(&parent, &bytes)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("item")
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE items SET parent_id = ? WHERE conversation_id = ? AND parent_id = ?`,
			parent, conversationID, itemID); err != nil {
			return err
		}
		// The deleted item's parent becomes current in its place: the
		// branch a client shows goes up by one.
		_, err = tx.ExecContext(ctx, `UPDATE conversations SET item_count = item_count - 1, text_bytes = text_bytes - ?,
			current_id = CASE current_id WHEN ? THEN ? ELSE current_id END, updated_at = max(updated_at + 1, ?) WHERE id = ?`,
			bytes, itemID, parent, time.Now().UnixNano(), conversationID)
		return err
	})
}

func exists(ctx context.Context, tx *sql.Tx, conversationID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM conversations WHERE id = ?`, conversationID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return notFound("conversation")
	}
	return nil
}

func queryItems(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]sluice.Item, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluice.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}
