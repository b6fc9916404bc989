package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

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
