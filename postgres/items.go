package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// addSQL appends items ($2..$11: arrays, one element an item, in order) to
// conversation $1 under its lock, which the statement before it in the
// batch took (so its snapshot sees every write before). An item without a
// parent goes under the one before it, the first under the current item.
// $12 and $13 are the items' count and text bytes, $14 and $15 the
// bounds, $16 the time, $17 the last item's ID. It returns one row per
// item stored, each with the head before; a parent that is not an item of
// the conversation (the first, by position: bad) or the bounds store
// nothing, and return the head alone; no conversation, no row.
const addSQL = `WITH h AS (
		SELECT current_id, updated_at, item_count, text_bytes, last_seq FROM conversations WHERE id = $1),
	n AS (
		SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::text[], $11::text[]) WITH ORDINALITY AS n(id, parent_id, role, text, text_folded, status, model, stream_id, usage, error, ord)),
	bad AS (
		SELECT min(n.ord) AS ord FROM n WHERE n.parent_id <> ''
			AND NOT EXISTS (SELECT 1 FROM items i WHERE i.id = n.parent_id AND i.conversation_id = $1)),
	ok AS (
		SELECT h.*, greatest($16::timestamptz, h.updated_at + interval '1 microsecond') AS at FROM h, bad
		WHERE bad.ord IS NULL AND h.item_count + $12 <= $14 AND h.text_bytes + $13 <= $15),
	ins AS (
		INSERT INTO items (id, conversation_id, seq, parent_id, role, text, text_folded, status, model, stream_id,
			usage, error, created_at, updated_at, heartbeat_at)
		SELECT n.id, $1, ok.last_seq + n.ord,
			CASE WHEN n.parent_id <> '' THEN n.parent_id WHEN n.ord = 1 THEN ok.current_id ELSE lag(n.id) OVER (ORDER BY n.ord) END,
			n.role, n.text, n.text_folded, n.status, n.model, n.stream_id, n.usage::jsonb, n.error::jsonb, ok.at, ok.at, ok.at
		FROM n, ok
		RETURNING id, seq, parent_id, created_at),
	up AS (
		UPDATE conversations SET current_id = $17, updated_at = ok.at, item_count = conversations.item_count + $12,
			text_bytes = conversations.text_bytes + $13, last_seq = conversations.last_seq + $12
		FROM ok WHERE conversations.id = $1 RETURNING 1)
	SELECT h.item_count, h.text_bytes, bad.ord, ins.id, ins.seq, ins.parent_id, ins.created_at,
		(SELECT count(*) FROM up)
	FROM h CROSS JOIN bad LEFT JOIN ins ON true`

// jsonText is v as JSON text for a jsonb column, nil (NULL) when v is nil.
func jsonText[T any](v *T) *string {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v) // plain structs always encode
	s := string(b)
	return &s
}

// AddItems implements sluice.ConversationStore in one round trip: a
// pgx.Batch of the conversation's lock and one statement (addSQL) that
// checks the parents and the bounds, inserts and moves the head. It was
// six: BEGIN, the head, the parents, COPY, the head again, COMMIT.
// (CreateConversation keeps COPY, for imports of thousands of items.)
func (s *Store) AddItems(ctx context.Context, id string, items []sluice.Item) ([]sluice.Item, error) {
	items, bytes, err := checkItems(items, false)
	if err != nil {
		return nil, err
	}
	if !textOK(id) {
		return nil, notFound("conversation", id)
	}
	if len(items) == 0 { // nothing to add: only whether there is such a conversation
		_, err := s.Conversation(ctx, id)
		return nil, err
	}
	cols := make([][]string, 8)
	var usage, ierr []*string
	for i := range items {
		it := &items[i]
		if it.ID == "" {
			it.ID = convcheck.NewItemID()
		}
		it.ConversationID = id
		for c, v := range []string{it.ID, it.ParentID, it.Role, it.Text, convcheck.Fold(it.Text), string(it.Status), it.Model, it.StreamID} {
			cols[c] = append(cols[c], v)
		}
		usage, ierr = append(usage, jsonText(it.Usage)), append(ierr, jsonText(it.Error))
	}
	var (
		found      bool
		count      int
		size       int64
		badOrd     *int64
		storedRows int
	)
	now, last := s.clock(), items[len(items)-1].ID
	err = s.writeBatch(ctx, "adding items", func() *pgx.Batch {
		found, storedRows = false, 0
		b := &pgx.Batch{}
		b.Queue("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", id)
		b.Queue(addSQL, id, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], usage, ierr,
			len(items), bytes, sluice.MaxConversationItems, sluice.MaxConversationBytes, now, last).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				found = true
				var (
					itemID, parent *string
					seq            *int64
					at             *time.Time
					up             int64
				)
				if err := rows.Scan(&count, &size, &badOrd, &itemID, &seq, &parent, &at, &up); err != nil {
					return err
				}
				if itemID == nil {
					continue
				}
				for i := range items {
					if items[i].ID == *itemID {
						items[i].Seq, items[i].ParentID = *seq, *parent
						items[i].CreatedAt, items[i].UpdatedAt = at.UTC(), at.UTC()
						storedRows++
					}
				}
			}
			return rows.Err()
		})
		return b
	})
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "items_pkey":
		return nil, convcheck.Conflict() // an ID the caller gave is taken
	case err != nil:
		return nil, err
	case !found:
		return nil, notFound("conversation", id)
	case badOrd != nil:
		i := int(*badOrd) - 1
		return nil, invalid("parent_id", "Item %d names the parent %s, which is not an item of this conversation.", i, clip(items[i].ParentID))
	case storedRows != len(items):
		if err := convcheck.Bounds(count+len(items), int(size)+bytes); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: adding items: %d of %d stored", storedRows, len(items)) // cannot be: all or none
	}
	return items, nil
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
