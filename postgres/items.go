package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

const itemColumns = "id, conversation_id, seq, parent_id, role, text, status, model, stream_id, usage, error, created_at, updated_at"

func scanItem(row pgx.Row) (sluice.Item, error) {
	var it sluice.Item
	err := row.Scan(&it.ID, &it.ConversationID, &it.Seq, &it.ParentID, &it.Role, &it.Text, &it.Status,
		&it.Model, &it.StreamID, &it.Usage, &it.Error, &it.CreatedAt, &it.UpdatedAt)
	it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC(), it.UpdatedAt.UTC()
	return it, err
}

func collectItems(rows pgx.Rows) ([]sluice.Item, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (sluice.Item, error) { return scanItem(r) })
}

// head is what a write to a conversation needs of its row, read under
// the row's lock.
type head struct {
	current string
	updated time.Time
	count   int
	bytes   int64
	lastSeq int64
}

// lockHead takes conversation id's row lock and reads its head.
func lockHead(ctx context.Context, tx pgx.Tx, id string) (head, error) {
	var h head
	if !textOK(id) {
		return h, notFound("conversation", id)
	}
	err := tx.QueryRow(ctx, `SELECT current_id, updated_at, item_count, text_bytes, last_seq
		FROM conversations WHERE id = $1 FOR UPDATE`, id).Scan(&h.current, &h.updated, &h.count, &h.bytes, &h.lastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, notFound("conversation", id)
	}
	return h, err
}

// newItems returns the checked items of a batch (convcheck.Items's) as
// they will be stored: IDs (where the caller gave none), times and Seq set, and each without a ParentID
// under the one before it (the first under current). It leaves items as
// they were, for a transaction run again.
func newItems(convID string, items []sluice.Item, current string, lastSeq int64, at time.Time) []sluice.Item {
	items = slices.Clone(items)
	parent := current
	for i := range items {
		it := &items[i]
		if it.ID == "" { // else the caller named it (convcheck.Items checked the name)
			it.ID = convcheck.NewItemID()
		}
		it.ConversationID, it.Seq = convID, lastSeq+int64(i)+1
		it.CreatedAt, it.UpdatedAt = at, at
		if it.ParentID == "" {
			it.ParentID = parent
		}
		parent = it.ID
	}
	return items
}

// jsonOrNull is v for a jsonb column, or NULL when v is a nil pointer.
func jsonOrNull[T any](v *T) any {
	if v == nil {
		return nil
	}
	return v
}

// insertItems writes items with COPY: a batch of thousands costs one
// round trip, not one each.
func insertItems(ctx context.Context, tx pgx.Tx, items []sluice.Item) error {
	if len(items) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"items"},
		[]string{"id", "conversation_id", "seq", "parent_id", "role", "text", "text_folded", "status", "model",
			"stream_id", "usage", "error", "created_at", "updated_at", "heartbeat_at"},
		pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
			it := items[i]
			return []any{it.ID, it.ConversationID, it.Seq, it.ParentID, it.Role, it.Text, convcheck.Fold(it.Text),
				string(it.Status), it.Model, it.StreamID, jsonOrNull(it.Usage), jsonOrNull(it.Error),
				it.CreatedAt, it.UpdatedAt, it.CreatedAt}, nil
		}))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "items_pkey" {
		return convcheck.Conflict() // an ID the caller gave is taken
	}
	return err
}

// Item implements sluice.ConversationStore.
func (s *Store) Item(ctx context.Context, conversationID, itemID string) (sluice.Item, error) {
	if !textOK(conversationID) || !textOK(itemID) {
		return sluice.Item{}, notFound("item", itemID)
	}
	var it sluice.Item
	err := s.inTx(ctx, "reading an item", func(tx pgx.Tx) (err error) {
		it, err = scanItem(tx.QueryRow(ctx, "SELECT "+itemColumns+" FROM items WHERE id = $1 AND conversation_id = $2", itemID, conversationID))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("item", itemID)
		}
		return err
	})
	return it, err
}

// conversationExists fails with ENOTFOUND when there is no conversation id.
func conversationExists(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := pgx.ErrNoRows
	if textOK(id) {
		err = tx.QueryRow(ctx, "SELECT 1 FROM conversations WHERE id = $1", id).Scan(&one)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("conversation", id)
	}
	return err
}

// Items implements sluice.ConversationStore.
func (s *Store) Items(ctx context.Context, conversationID string, q sluice.ItemQuery) ([]sluice.Item, bool, error) {
	limit, err := convcheck.Limit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	cmp, order := ">", "ASC"
	if q.Desc {
		cmp, order = "<", "DESC"
	}
	var out []sluice.Item
	err = s.inTx(ctx, "listing items", func(tx pgx.Tx) error {
		if err := conversationExists(ctx, tx, conversationID); err != nil {
			return err
		}
		sql := "SELECT " + itemColumns + " FROM items WHERE conversation_id = $1"
		args := []any{conversationID, limit + 1}
		if q.After != "" {
			var seq int64
			err := pgx.ErrNoRows
			if textOK(q.After) {
				err = tx.QueryRow(ctx, "SELECT seq FROM items WHERE id = $1 AND conversation_id = $2", q.After, conversationID).Scan(&seq)
			}
			if errors.Is(err, pgx.ErrNoRows) {
				return invalid("after", "No item %s in the conversation to list after.", clip(q.After))
			}
			if err != nil {
				return err
			}
			sql += " AND seq " + cmp + " $3"
			args = append(args, seq)
		}
		rows, err := tx.Query(ctx, sql+" ORDER BY seq "+order+" LIMIT $2", args...)
		if err != nil {
			return err
		}
		out, err = collectItems(rows)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out[:min(len(out), limit)], len(out) > limit, nil
}

// branchSQL reads the path from the root to item $2 of conversation $1,
// root first ($2 ”: from the conversation's current item). Parents are
// always older items of the conversation, so the walk ends; the depth
// bound ($3) guards against a tree broken by hand. The walk follows IDs
// alone, so that each step is one lookup in the primary key: with the
// conversation in the join as well, the planner took its index and read
// every item of the conversation at every step (30 ms for a branch of
// 200). The conversation is checked on the result instead.
const branchSQL = `WITH RECURSIVE branch AS (
		SELECT ` + itemColumns + `, 0 AS depth FROM items
		WHERE id = (SELECT CASE WHEN $2 = '' THEN (SELECT current_id FROM conversations WHERE id = $1) ELSE $2 END)
		UNION ALL
		SELECT i.id, i.conversation_id, i.seq, i.parent_id, i.role, i.text, i.status, i.model, i.stream_id,
			i.usage, i.error, i.created_at, i.updated_at, b.depth + 1
		FROM branch b JOIN items i ON i.id = b.parent_id
		WHERE b.parent_id <> '' AND b.depth <= $3)
	SELECT ` + itemColumns + ` FROM branch WHERE conversation_id = $1 ORDER BY depth DESC`

// Branch implements sluice.ConversationStore.
func (s *Store) Branch(ctx context.Context, conversationID, itemID string) ([]sluice.Item, error) {
	if !textOK(conversationID) || !textOK(itemID) || itemID == "" {
		return nil, notFound("item", itemID)
	}
	var out []sluice.Item
	err := s.inTx(ctx, "reading a branch", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, branchSQL, conversationID, itemID, sluice.MaxConversationItems)
		if err != nil {
			return err
		}
		if out, err = collectItems(rows); err == nil && len(out) == 0 {
			return notFound("item", itemID)
		}
		return err
	})
	return out, err
}

// Continuation implements sluice.ConversationStore in one round trip: the
// head and the branch go to the server as one pgx.Batch (one Sync), not in
// a transaction of their own (which would add BEGIN and COMMIT). Each
// statement reads its own snapshot: a write landing between them can
// make the branch newer than the head's counts, which only the bounds
// read, and AddItems checks those again.
func (s *Store) Continuation(ctx context.Context, id, itemID string) (sluice.Continuation, error) {
	var out sluice.Continuation
	if !textOK(id) {
		return out, notFound("conversation", id)
	}
	err := s.readBatch(ctx, "reading a conversation to continue", func() *pgx.Batch {
		out = sluice.Continuation{}
		b := &pgx.Batch{}
		b.Queue("SELECT "+convColumns+", item_count, text_bytes FROM conversations WHERE id = $1", id).QueryRow(func(row pgx.Row) error {
			c, err := scanHeadSized(row, &out)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("conversation", id)
			}
			out.Conversation = c
			return err
		})
		if textOK(itemID) { // else no item of it: the branch stays empty
			b.Queue(branchSQL, id, itemID, sluice.MaxConversationItems).Query(func(rows pgx.Rows) (err error) {
				out.Branch, err = collectItems(rows)
				return err
			})
		}
		return b
	})
	if err != nil {
		return sluice.Continuation{}, err
	}
	return out, nil
}

// DeleteItem implements sluice.ConversationStore.
func (s *Store) DeleteItem(ctx context.Context, conversationID, itemID string) error {
	return s.inTx(ctx, "deleting an item", func(tx pgx.Tx) error {
		h, err := lockHead(ctx, tx, conversationID)
		if err != nil {
			return err
		}
		var parent string
		var size int64
		err = pgx.ErrNoRows
		if textOK(itemID) {
			err = tx.QueryRow(ctx, "SELECT parent_id, octet_length(text) FROM items WHERE id = $1 AND conversation_id = $2",
				itemID, conversationID).Scan(&parent, &size)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("item", itemID)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE items SET parent_id = $3 WHERE conversation_id = $1 AND parent_id = $2",
			conversationID, itemID, parent); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM items WHERE id = $1", itemID); err != nil {
			return err
		}
		current := h.current
		if current == itemID {
			current = parent
		}
		_, err = tx.Exec(ctx, `UPDATE conversations SET current_id = $2, updated_at = $3,
			item_count = item_count - 1, text_bytes = text_bytes - $4 WHERE id = $1`,
			conversationID, current, later(s.clock(), h.updated), size)
		return err
	})
}
