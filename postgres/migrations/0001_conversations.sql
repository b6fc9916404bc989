-- Conversations and their messages (issue 15).
--
-- The counters on conversations (item_count, text_bytes, last_seq) are kept
-- by the store under the conversation's row lock, so that the bounds of
-- conversation.go are checked without scanning the items, and Seq is
-- assigned without gaps or races between nodes.
--
-- title_folded and text_folded hold the text as Go's strings.ToLower folds
-- it: search matches them with LIKE, so that it is case-insensitive the same
-- way whatever locale the database was made with (lower() and ILIKE fold
-- only ASCII under the C locale).
CREATE TABLE conversations (
    id           text PRIMARY KEY,
    owner        text NOT NULL,
    title        text NOT NULL,
    title_folded text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    current_id   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    item_count   integer NOT NULL DEFAULT 0,
    text_bytes   bigint NOT NULL DEFAULT 0,
    last_seq     bigint NOT NULL DEFAULT 0
);

-- An owner's conversations, newest change first: the listing's order and
-- its paging cursor.
CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);

CREATE TABLE items (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    parent_id       text NOT NULL DEFAULT '', -- '' for a root
    role            text NOT NULL,
    text            text NOT NULL,
    text_folded     text NOT NULL,
    status          text NOT NULL,
    model           text NOT NULL DEFAULT '',
    stream_id       text NOT NULL DEFAULT '',
    usage           jsonb,
    error           jsonb,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL,
    UNIQUE (conversation_id, seq)
);

-- DeleteItem moves an item's children: find them without a scan.
CREATE INDEX items_by_parent ON items (conversation_id, parent_id);

-- The sweeper looks only at messages still in progress.
CREATE INDEX items_in_progress ON items (heartbeat_at) WHERE status = 'in_progress';
