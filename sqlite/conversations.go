package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

const convColumns = `id, owner, title, metadata, current_id, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanConversation(row scanner) (sluice.Conversation, error) {
	return scanHeadSized(row, nil)
}

// scanHeadSized scans a conversation's columns, and after them its
// item_count and text_bytes into size when it is not nil.
func scanHeadSized(row scanner, size *sluice.Continuation) (sluice.Conversation, error) {
	var c sluice.Conversation
	var meta string
	var created, updated int64
	dest := []any{&c.ID, &c.Owner, &c.Title, &meta, &c.CurrentID, &created, &updated}
	if size != nil {
		dest = append(dest, &size.Items, &size.Bytes)
	}
	if err := row.Scan(dest...); err != nil {
		return c, err
	}
	c.Metadata = map[string]string{}
	if err := json.Unmarshal([]byte(meta), &c.Metadata); err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

func metadataJSON(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return string(b)
}

// bump marks conversation id changed at now and returns its UpdatedAt,
// which moves on by at least a nanosecond: a listing's order then follows
// the order of changes even when the clock stands still or steps back.
func bump(ctx context.Context, tx *sql.Tx, id string, now int64) (int64, error) {
	var updated int64
	err := tx.QueryRowContext(ctx, `UPDATE conversations SET updated_at = max(updated_at + 1, ?) WHERE id = ? RETURNING updated_at`,
		now, id).Scan(&updated)
	return updated, err
}

// CreateConversation implements sluice.ConversationStore.
func (s *Store) CreateConversation(ctx context.Context, c sluice.Conversation, items []sluice.Item) (sluice.Conversation, []sluice.Item, error) {
	if err := convcheck.Head(&c.Title, c.Metadata); err != nil {
		return sluice.Conversation{}, nil, err
	}
	items, bytes, err := convcheck.Items(items, false)
	if err == nil {
		err = convcheck.Bounds(len(items), bytes)
	}
	if err != nil {
		return sluice.Conversation{}, nil, err
	}
	now := time.Now().UnixNano()
	out := sluice.Conversation{
		ID: convcheck.NewConversationID(), Owner: c.Owner, Title: c.Title, Metadata: maps.Clone(c.Metadata),
		CreatedAt: fromNanos(now), UpdatedAt: fromNanos(now),
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	chain(out.ID, "", items, now)
	if len(items) > 0 {
		out.CurrentID = items[len(items)-1].ID
	}
	err = s.write(ctx, "creating a conversation", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO conversations (`+convColumns+`, item_count, text_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.ID, out.Owner, out.Title, metadataJSON(out.Metadata), out.CurrentID, now, now, len(items), bytes)
		if err != nil {
			return err
		}
		return insertItems(ctx, tx, items, now)
	})
	if err != nil {
		return sluice.Conversation{}, nil, err
	}
	return out, items, nil
}

// Conversation implements sluice.ConversationStore.
func (s *Store) Conversation(ctx context.Context, id string) (sluice.Conversation, error) {
	var c sluice.Conversation
	err := s.read(ctx, "reading a conversation", func(tx *sql.Tx) (err error) {
		c, err = scanConversation(tx.QueryRowContext(ctx, `SELECT `+convColumns+` FROM conversations WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("conversation")
		}
		return err
	})
	return c, err
}

// UpdateConversation implements sluice.ConversationStore.
func (s *Store) UpdateConversation(ctx context.Context, id string, p sluice.ConversationPatch) (sluice.Conversation, error) {
	if err := convcheck.Head(p.Title, p.Metadata); err != nil {
		return sluice.Conversation{}, err
	}
	var title, meta sql.NullString
	if p.Title != nil {
		title = sql.NullString{String: *p.Title, Valid: true}
	}
	if p.Metadata != nil {
		meta = sql.NullString{String: metadataJSON(p.Metadata), Valid: true}
	}
	var c sluice.Conversation
	err := s.write(ctx, "updating a conversation", func(tx *sql.Tx) (err error) {
		c, err = scanConversation(tx.QueryRowContext(ctx, `UPDATE conversations
			SET title = coalesce(?, title), metadata = coalesce(?, metadata), updated_at = max(updated_at + 1, ?)
			WHERE id = ? RETURNING `+convColumns, title, meta, time.Now().UnixNano(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("conversation")
		}
		return err
	})
	return c, err
}

// DeleteConversation implements sluice.ConversationStore.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	return s.write(ctx, "deleting a conversation", func(tx *sql.Tx) error {
		// Its items go with it: ON DELETE CASCADE.
		res, err := tx.ExecContext(ctx, `DELETE FROM conversations WHERE id = ?`, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = notFound("conversation")
		}
		return err
	})
}

// Conversations implements sluice.ConversationStore. Search is a plain
// scan of the owner's titles and texts, folded by convcheck.Fold: correct
// for any text and any language, and quick enough for the conversations of
// one key; an index (FTS5) would need a tokenizer that breaks words as
// every language does, and finds words rather than any substring.
func (s *Store) Conversations(ctx context.Context, q sluice.ConversationQuery) ([]sluice.Conversation, bool, error) {
	limit, err := convcheck.Limit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	var out []sluice.Conversation
	err = s.read(ctx, "listing conversations", func(tx *sql.Tx) error {
		var where strings.Builder
		args := []any{q.Owner}
		where.WriteString(`owner = ?`)
		if q.After != "" {
			var updated int64
			err := tx.QueryRowContext(ctx, `SELECT updated_at FROM conversations WHERE id = ? AND owner = ?`, q.After, q.Owner).Scan(&updated)
			if errors.Is(err, sql.ErrNoRows) {
				return &sluice.Error{Code: sluice.EINVALID, Param: "after", Message: "after names no conversation of yours."}
			} else if err != nil {
				return err
			}
			where.WriteString(` AND (updated_at < ? OR updated_at = ? AND id < ?)`)
			args = append(args, updated, updated, q.After)
		}
		if q.Search != "" {
			needle := convcheck.Fold(q.Search)
			where.WriteString(` AND (instr(` + foldFunc + `(title), ?) > 0 OR EXISTS (SELECT 1 FROM items
				WHERE items.conversation_id = conversations.id AND instr(` + foldFunc + `(items.text), ?) > 0))`)
			args = append(args, needle, needle)
		}
		args = append(args, limit+1)
		rows, err := tx.QueryContext(ctx, `SELECT `+convColumns+` FROM conversations WHERE `+where.String()+
			` ORDER BY updated_at DESC, id DESC LIMIT ?`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConversation(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	return out[:min(len(out), limit)], more, nil
}
