package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// UpdateMessage implements sluice.ConversationStore.
func (s *Store) UpdateMessage(ctx context.Context, itemID string, u sluice.MessageUpdate) error {
	if err := convcheck.Update(u); err != nil {
		return err
	}
	if u.Status == "" {
		u.Status = sluice.StatusInProgress
	}
	return s.write(ctx, "updating a message", func(tx *sql.Tx) error {
		var convID string
		var status sluice.MessageStatus
		var old, total int
		err := tx.QueryRowContext(ctx, `SELECT i.conversation_id, i.status, length(CAST(i.text AS BLOB)), c.text_bytes
			FROM items i JOIN conversations c ON c.id = i.conversation_id WHERE i.id = ?`, itemID).
			Scan(&convID, &status, &old, &total)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("item")
		} else if err != nil {
			return err
		}
		if status.Final() {
			return &sluice.Error{Code: sluice.ECONFLICT, Kind: "message_ended",
				Message: "The message has ended (" + string(status) + ") and cannot change."}
		}
		grown := len(u.Text) - old
		if err := convcheck.Bounds(0, total+grown); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		// Usage and Error stay as they were when the update leaves them out.
		_, err = tx.ExecContext(ctx, `UPDATE items SET text = ?, status = ?, usage = coalesce(?, usage), error = coalesce(?, error),
			updated_at = max(updated_at + 1, ?), heartbeat_at = ? WHERE id = ?`,
			u.Text, u.Status, jsonOrNull(u.Usage), jsonOrNull(u.Error), now, now, itemID)
		if err != nil {
			return err
		}
		// The size and the time in one statement: every batch of every
		// streaming answer comes here, through the one writer.
		_, err = tx.ExecContext(ctx, `UPDATE conversations SET text_bytes = text_bytes + ?, updated_at = max(updated_at + 1, ?)
			WHERE id = ?`, grown, now, convID)
		return err
	})
}

// touchBatch bounds the IDs of one statement, well under SQLite's limit
// of bound parameters.
const touchBatch = 500

// Touch implements sluice.ConversationStore.
func (s *Store) Touch(ctx context.Context, itemIDs ...string) error {
	if len(itemIDs) == 0 {
		return nil
	}
	return s.write(ctx, "touching messages", func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		for len(itemIDs) > 0 {
			n := min(len(itemIDs), touchBatch)
			args := []any{now}
			for _, id := range itemIDs[:n] {
				args = append(args, id)
			}
			_, err := tx.ExecContext(ctx, `UPDATE items SET heartbeat_at = ? WHERE status = 'in_progress' AND id IN (?`+
				strings.Repeat(", ?", n-1)+`)`, args...)
			if err != nil {
				return err
			}
			itemIDs = itemIDs[n:]
		}
		return nil
	})
}

// SweepInterrupted implements sluice.ConversationStore.
func (s *Store) SweepInterrupted(ctx context.Context, staleBefore time.Time) ([]sluice.Swept, error) {
	var swept []sluice.Swept
	err := s.write(ctx, "sweeping interrupted messages", func(tx *sql.Tx) error {
		swept = swept[:0]
		now := time.Now().UnixNano()
		rows, err := tx.QueryContext(ctx, `UPDATE items SET status = 'interrupted', updated_at = max(updated_at + 1, ?)
			WHERE status = 'in_progress' AND heartbeat_at < ? RETURNING conversation_id`, now, staleBefore.UnixNano())
		if err != nil {
			return err
		}
		convs := map[string]int{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			convs[id]++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for id, n := range convs {
			sw := sluice.Swept{ConversationID: id, Messages: n}
			err := tx.QueryRowContext(ctx, `UPDATE conversations SET updated_at = max(updated_at + 1, ?) WHERE id = ? RETURNING owner`,
				now, id).Scan(&sw.Owner)
			if err != nil {
				return err
			}
			swept = append(swept, sw)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return swept, nil
}
