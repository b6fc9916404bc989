package postgres

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// updateSQL applies an update ($2-$6, $7 the time, $8 the folded text) to
// message $1 under its conversation's lock, which the statement before it
// in the batch took. Taken after the lock, its snapshot sees every write
// that held the lock before. It returns the message's status before, and
// the bytes its conversation would hold after: a status already final, or
// bytes over $9, change nothing, and the caller says why.
const updateSQL = `WITH i AS (
		SELECT id, conversation_id, status, octet_length(text) AS size FROM items WHERE id = $1),
	c AS (
		SELECT c.id, c.text_bytes - i.size + octet_length($2::text) AS bytes FROM conversations c JOIN i ON c.id = i.conversation_id),
	ok AS (
		SELECT i.id, c.id AS cid, c.bytes FROM i, c WHERE i.status = 'in_progress' AND c.bytes <= $9),
	ui AS (
		UPDATE items SET text = $2, text_folded = $8, status = $3, usage = COALESCE($4, usage), error = COALESCE($5, error),
			updated_at = greatest($6, items.updated_at + interval '1 microsecond'), heartbeat_at = $7
		FROM ok WHERE items.id = ok.id RETURNING 1),
	uc AS (
		UPDATE conversations SET text_bytes = ok.bytes, updated_at = greatest($6, conversations.updated_at + interval '1 microsecond')
		FROM ok WHERE conversations.id = ok.cid RETURNING 1)
	SELECT i.status, c.bytes, (SELECT count(*) FROM ui) + (SELECT count(*) FROM uc) FROM i, c`

// UpdateMessage implements sluice.ConversationStore in one round trip: a
// pgx.Batch of two statements (one Sync: PostgreSQL runs them as one
// implicit transaction, without BEGIN and COMMIT of their own), the first
// taking the conversation's row lock, as every writer does first, the
// second checking and writing (updateSQL). It was seven: BEGIN, three
// reads, two updates, COMMIT.
func (s *Store) UpdateMessage(ctx context.Context, itemID string, u sluice.MessageUpdate) error {
	if err := convcheck.Update(u); err != nil {
		return err
	}
	if !textOK(itemID) {
		return notFound("message", itemID)
	}
	status := u.Status
	if status == "" {
		status = sluice.StatusInProgress
	}
	var (
		old     sluice.MessageStatus
		bytes   int64
		changed int64
	)
	var found bool
	now := s.clock()
	err := s.writeBatch(ctx, "updating a message", func() *pgx.Batch {
		found = false
		b := &pgx.Batch{}
		b.Queue("SELECT 1 FROM conversations WHERE id = (SELECT conversation_id FROM items WHERE id = $1) FOR UPDATE", itemID)
		b.Queue(updateSQL, itemID, u.Text, string(status), jsonOrNull(u.Usage), jsonOrNull(u.Error), now, now,
			convcheck.Fold(u.Text), sluice.MaxConversationBytes).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				found = true
				if err := rows.Scan(&old, &bytes, &changed); err != nil {
					return err
				}
			}
			return rows.Err()
		})
		return b
	})
	if err != nil {
		return err
	}
	switch {
	case !found: // no such message, or deleted while we waited for the lock
		return notFound("message", itemID)
	case old.Final():
		return &sluice.Error{Code: sluice.ECONFLICT, Message: "The message has ended (" + string(old) + "); it cannot change any more."}
	case changed != 2:
		return convcheck.Bounds(0, int(bytes))
	}
	return nil
}

// Touch implements sluice.ConversationStore in one round trip: one
// statement, atomic on its own (it was three, in a transaction). IDs that
// name no message in progress are passed over.
func (s *Store) Touch(ctx context.Context, itemIDs ...string) error {
	ids := make([]string, 0, len(itemIDs))
	for _, id := range itemIDs {
		if textOK(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	now := s.clock()
	return s.writeBatch(ctx, "touching messages", func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue("UPDATE items SET heartbeat_at = $2 WHERE id = ANY($1) AND status = 'in_progress'", ids, now)
		return b
	})
}

// SweepInterrupted implements sluice.ConversationStore. Nodes may sweep at
// once: each takes the row locks of the conversations it sweeps in order
// of ID, and rechecks the messages under them, so that a message is marked
// once and never after its writer ended it.
func (s *Store) SweepInterrupted(ctx context.Context, staleBefore time.Time) ([]sluice.Swept, error) {
	var out []sluice.Swept
	err := s.inTx(ctx, "sweeping interrupted messages", func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT DISTINCT conversation_id FROM items
			WHERE status = 'in_progress' AND heartbeat_at < $1`, staleBefore)
		if err != nil {
			return err
		}
		convs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(convs) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE", convs); err != nil {
			return err
		}
		now := s.clock()
		rows, err = tx.Query(ctx, `UPDATE items SET status = 'interrupted',
				updated_at = greatest($3, updated_at + interval '1 microsecond')
			WHERE conversation_id = ANY($1) AND status = 'in_progress' AND heartbeat_at < $2
			RETURNING conversation_id`, convs, staleBefore, now)
		if err != nil {
			return err
		}
		swept, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(swept) == 0 {
			return err
		}
		count := map[string]int{}
		for _, id := range swept {
			count[id]++
		}
		rows, err = tx.Query(ctx, `UPDATE conversations SET updated_at = greatest($2, updated_at + interval '1 microsecond')
			WHERE id = ANY($1) RETURNING id, owner`, slices.Collect(maps.Keys(count)), now)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (sluice.Swept, error) {
			var sw sluice.Swept
			err := r.Scan(&sw.ConversationID, &sw.Owner)
			sw.Messages = count[sw.ConversationID]
			return sw, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
