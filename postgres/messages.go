package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// UpdateMessage implements sluice.ConversationStore.
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
	return s.inTx(ctx, "updating a message", func(tx pgx.Tx) error {
		var convID string
		err := tx.QueryRow(ctx, "SELECT conversation_id FROM items WHERE id = $1", itemID).Scan(&convID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("message", itemID)
		}
		if err != nil {
			return err
		}
		// The conversation's lock first, as every writer takes it.
		h, err := lockHead(ctx, tx, convID)
		if err != nil {
			return err
		}
		var (
			old     sluice.MessageStatus
			size    int64
			updated time.Time
		)
		err = tx.QueryRow(ctx, `SELECT status, octet_length(text), updated_at FROM items
			WHERE id = $1 AND conversation_id = $2 FOR UPDATE`, itemID, convID).Scan(&old, &size, &updated)
		if errors.Is(err, pgx.ErrNoRows) { // deleted while we waited for the lock
			return notFound("message", itemID)
		}
		if err != nil {
			return err
		}
		if old.Final() {
			return &sluice.Error{Code: sluice.ECONFLICT, Message: "The message has ended (" + string(old) + "); it cannot change any more."}
		}
		bytes := h.bytes - size + int64(len(u.Text))
		if err := convcheck.Bounds(h.count, int(bytes)); err != nil {
			return err
		}
		now := s.clock()
		if _, err := tx.Exec(ctx, `UPDATE items SET text = $2, text_folded = $8, status = $3,
			usage = COALESCE($4, usage), error = COALESCE($5, error), updated_at = $6, heartbeat_at = $7 WHERE id = $1`,
			itemID, u.Text, string(status), jsonOrNull(u.Usage), jsonOrNull(u.Error), later(now, updated), now, convcheck.Fold(u.Text)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE conversations SET text_bytes = $2, updated_at = $3 WHERE id = $1",
			convID, bytes, later(now, h.updated))
		return err
	})
}

// Touch implements sluice.ConversationStore. IDs that name no message in
// progress are passed over.
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
	return s.inTx(ctx, "touching messages", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE items SET heartbeat_at = $2 WHERE id = ANY($1) AND status = 'in_progress'", ids, s.clock())
		return err
	})
}

// SweepInterrupted implements sluice.ConversationStore. Nodes may sweep at
// once: each takes the row locks of the conversations it sweeps in order
// of ID, and rechecks the messages under them, so that a message is marked
// once and never after its writer ended it.
func (s *Store) SweepInterrupted(ctx context.Context, staleBefore time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, "sweeping interrupted messages", func(tx pgx.Tx) error {
		n = 0
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
		if err != nil {
			return err
		}
		n = len(swept)
		_, err = tx.Exec(ctx, `UPDATE conversations SET updated_at = greatest($2, updated_at + interval '1 microsecond')
			WHERE id = ANY($1)`, swept, now)
		return err
	})
	return n, err
}
