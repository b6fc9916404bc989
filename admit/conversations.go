package admit

import (
	"context"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
)

// Conversations keeps the chats that continue a conversation kept on the
// server (convo.Service; cmd wires it into Config): a chat completion
// request that carries the extra field "conversation" (and maybe
// "parent_id") is answered from the stored branch, and stored as it
// streams.
type Conversations interface {
	// Prepare checks that owner may continue the conversation req names,
	// takes the conversation's fields out of req (no model sees them) and
	// puts the stored branch before its messages. It returns nil for a
	// request that names none; otherwise what to call once the generation
	// has started, which returns the conversation's and the answer's IDs
	// at once and stores the chat off the request path (it fails only
	// when the service is shutting down).
	Prepare(ctx context.Context, owner string, req *sluice.ChatRequest) (
		func(ctx context.Context, g *gen.Generation) (conversationID, messageID string, err error), error)
}

// The extra fields of a chat completion request that continue a
// conversation.
const (
	fieldConversation = "conversation"
	fieldParentID     = "parent_id"
)

var errConversationsOff = &sluice.Error{Code: sluice.ENOTFOUND, Kind: "conversations_off", Param: fieldConversation,
	Message: "This server keeps no conversations (it runs with --data-dir off); send the chat without 'conversation'."}

// checkConversation refuses a chat that names a conversation when the
// server keeps none: its model would otherwise answer without the
// conversation, and the answer be stored nowhere.
func (g *Gate) checkConversation(req *sluice.ChatRequest) error {
	_, named := req.Extra[fieldConversation]
	_, parented := req.Extra[fieldParentID]
	if (named || parented) && g.cfg.Conversations == nil {
		return errConversationsOff
	}
	return nil
}
