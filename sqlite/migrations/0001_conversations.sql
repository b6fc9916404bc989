-- Conversations and their messages (issue 15). Times are Unix nanoseconds.

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    metadata   TEXT NOT NULL,    -- a JSON object of strings
    current_id TEXT NOT NULL,    -- '' when there is no message
    -- The bounds are checked on every write: counting here keeps that to
    -- one row read rather than a scan of the messages.
    item_count INTEGER NOT NULL,
    text_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- An owner's conversations, newest change first, page after page.
CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);

CREATE TABLE items (
    -- AUTOINCREMENT so that a deleted message's seq is never given again:
    -- seq orders a conversation's messages and pages resume after one.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    parent_id       TEXT NOT NULL,   -- '' for a root
    role            TEXT NOT NULL,
    text            TEXT NOT NULL,
    status          TEXT NOT NULL,
    model           TEXT NOT NULL,
    stream_id       TEXT NOT NULL,
    usage           TEXT,            -- JSON, NULL until reported
    error           TEXT,            -- JSON, NULL unless failed
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL -- the writer's last sign of life, for the sweeper
) STRICT;

CREATE INDEX items_by_conversation ON items (conversation_id, seq);
CREATE INDEX items_by_parent ON items (conversation_id, parent_id);
-- The sweeper looks only at messages still streaming.
CREATE INDEX items_in_progress ON items (heartbeat_at) WHERE status = 'in_progress';
