package postgres

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

const convColumns = "id, owner, title, metadata, current_id, created_at, updated_at"

func scanConversation(row pgx.Row) (sluice.Conversation, error) {
	return scanHeadSized(row, nil)
}

// scanHeadSized scans a conversation's columns, and after them its
// item_count and text_bytes into size when it is not nil.
func scanHeadSized(row pgx.Row, size *sluice.Continuation) (sluice.Conversation, error) {
	var c sluice.Conversation
	var bytes int64
	dest := []any{&c.ID, &c.Owner, &c.Title, &c.Metadata, &c.CurrentID, &c.CreatedAt, &c.UpdatedAt}
	if size != nil {
		dest = append(dest, &size.Items, &bytes)
	}
	err := row.Scan(dest...)
	if size != nil {
		size.Bytes = int(bytes)
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

// metadataParam is m as the NOT NULL jsonb column takes it.
func metadataParam(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// CreateConversation implements sluice.ConversationStore.
func (s *Store) CreateConversation(ctx context.Context, c sluice.Conversation, items []sluice.Item) (sluice.Conversation, []sluice.Item, error) {
	if err := convcheck.Head(&c.Title, c.Metadata); err != nil {
		return sluice.Conversation{}, nil, err
	}
	if err := convcheck.Text("owner", c.Owner); err != nil {
		return sluice.Conversation{}, nil, err
	}
	items, bytes, err := checkItems(items, true)
	if err != nil {
		return sluice.Conversation{}, nil, err
	}
	now := s.clock()
	out := sluice.Conversation{
		ID: convcheck.NewConversationID(), Owner: c.Owner, Title: c.Title, Metadata: maps.Clone(c.Metadata),
		CreatedAt: now, UpdatedAt: now,
	}
	if len(out.Metadata) == 0 {
		out.Metadata = nil
	}
	made := newItems(out.ID, items, "", 0, now)
	if len(made) > 0 {
		out.CurrentID = made[len(made)-1].ID
	}
	err = s.inTx(ctx, "creating a conversation", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO conversations
			(id, owner, title, title_folded, metadata, current_id, created_at, updated_at, item_count, text_bytes, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)`,
			out.ID, out.Owner, out.Title, convcheck.Fold(out.Title), metadataParam(out.Metadata), out.CurrentID, now,
			len(made), bytes, int64(len(made)))
		if err != nil {
			return err
		}
		return insertItems(ctx, tx, made)
	})
	if err != nil {
		return sluice.Conversation{}, nil, err
	}
	return out, made, nil
}

// Conversation implements sluice.ConversationStore.
func (s *Store) Conversation(ctx context.Context, id string) (sluice.Conversation, error) {
	if !textOK(id) {
		return sluice.Conversation{}, notFound("conversation", id)
	}
	// One statement, sent alone: one round trip, not three in a
	// transaction of its own. The service reads a conversation after every
	// write of a chat, to tell its feed.
	var c sluice.Conversation
	err := s.readBatch(ctx, "reading a conversation", func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue("SELECT "+convColumns+" FROM conversations WHERE id = $1", id).QueryRow(func(row pgx.Row) (err error) {
			c, err = scanConversation(row)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("conversation", id)
			}
			return err
		})
		return b
	})
	if err != nil {
		return sluice.Conversation{}, err
	}
	return c, nil
}

// lockConversation reads conversation id, and takes its row lock when
// forUpdate: every write to a conversation or its items does, first.
func lockConversation(ctx context.Context, tx pgx.Tx, id string, forUpdate bool) (sluice.Conversation, error) {
	if !textOK(id) {
		return sluice.Conversation{}, notFound("conversation", id)
	}
	q := "SELECT " + convColumns + " FROM conversations WHERE id = $1"
	if forUpdate {
		q += " FOR UPDATE"
	}
	c, err := scanConversation(tx.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound("conversation", id)
	}
	return c, err
}

// UpdateConversation implements sluice.ConversationStore.
func (s *Store) UpdateConversation(ctx context.Context, id string, p sluice.ConversationPatch) (sluice.Conversation, error) {
	if err := convcheck.Head(p.Title, p.Metadata); err != nil {
		return sluice.Conversation{}, err
	}
	var c sluice.Conversation
	err := s.inTx(ctx, "updating a conversation", func(tx pgx.Tx) error {
		old, err := lockConversation(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if p.Title == nil && p.Metadata == nil {
			c = old
			return nil
		}
		title, meta := old.Title, old.Metadata
		if p.Title != nil {
			title = *p.Title
		}
		if p.Metadata != nil {
			meta = p.Metadata
		}
		c, err = scanConversation(tx.QueryRow(ctx, `UPDATE conversations
			SET title = $2, title_folded = $3, metadata = $4, updated_at = $5
			WHERE id = $1 RETURNING `+convColumns,
			id, title, convcheck.Fold(title), metadataParam(meta), later(s.clock(), old.UpdatedAt)))
		return err
	})
	return c, err
}

// DeleteConversation implements sluice.ConversationStore.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	if !textOK(id) {
		return notFound("conversation", id)
	}
	return s.inTx(ctx, "deleting a conversation", func(tx pgx.Tx) error {
		// The items go with it (ON DELETE CASCADE).
		tag, err := tx.Exec(ctx, "DELETE FROM conversations WHERE id = $1", id)
		if err == nil && tag.RowsAffected() == 0 {
			return notFound("conversation", id)
		}
		return err
	})
}

// likeEscaper makes a search literal in a LIKE pattern with ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Conversations implements sluice.ConversationStore. Search is a LIKE
// '%text%' on the folded title and texts (see the migration): substring
// matching, as the contract asks, where full-text search (to_tsvector)
// would match words and stems instead. It scans the owner's conversations
// and their items; an owner's conversations are few enough for that, and a
// trigram index (pg_trgm) can be added when they are not.
func (s *Store) Conversations(ctx context.Context, q sluice.ConversationQuery) ([]sluice.Conversation, bool, error) {
	limit, err := convcheck.Limit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	if err := convcheck.Text("q", q.Search); err != nil {
		return nil, false, err
	}
	if !textOK(q.Owner) {
		return nil, false, nil // no conversation can have such an owner
	}
	sql := "SELECT " + convColumns + " FROM conversations c WHERE owner = $1"
	args := []any{q.Owner}
	if q.Search != "" {
		args = append(args, "%"+likeEscaper.Replace(convcheck.Fold(q.Search))+"%")
		sql += ` AND (title_folded LIKE $2 ESCAPE '\' OR EXISTS (
			SELECT 1 FROM items i WHERE i.conversation_id = c.id AND i.text_folded LIKE $2 ESCAPE '\'))`
	}
	var out []sluice.Conversation
	err = s.inTx(ctx, "listing conversations", func(tx pgx.Tx) error {
		sql, args := sql, slices.Clone(args) // a second try starts afresh
		if q.After != "" {
			var at time.Time
			err := pgx.ErrNoRows
			if textOK(q.After) {
				err = tx.QueryRow(ctx, "SELECT updated_at FROM conversations WHERE id = $1 AND owner = $2", q.After, q.Owner).Scan(&at)
			}
			if errors.Is(err, pgx.ErrNoRows) {
				return invalid("after", "No conversation %s of the owner to list after.", clip(q.After))
			}
			if err != nil {
				return err
			}
			args = append(args, at, q.After)
			sql += " AND (updated_at, id) < ($" + strconv.Itoa(len(args)-1) + ", $" + strconv.Itoa(len(args)) + ")"
		}
		args = append(args, limit+1)
		rows, err := tx.Query(ctx, sql+" ORDER BY updated_at DESC, id DESC LIMIT $"+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (sluice.Conversation, error) { return scanConversation(r) })
		return err
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	return out[:min(len(out), limit)], more, nil
}
