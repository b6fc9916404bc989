// Package ws is Sluice's WebSocket transport: GET /ws renders the same logs
// as the SSE routes, with the same event IDs and the same data, so that the
// two transports can be compared on the same work. In the flow request →
// model → log → reader → transport → wire it is a transport, beside api's
// SSE: it starts generations with the runner, reads logs from the store, and
// writes JSON frames.
//
// It is built as the hub builds SSE (see package hub): no goroutine per
// connection while it is idle. After the handshake one poller goroutine
// learns, from an epoll set, which connections have bytes to read, and a
// short read turn reads their frames; each log followed has one feed,
// which encodes a batch of new events once into frames and writes the same
// bytes to every connection that follows the log, with one system call
// each and without waiting on any; a connection whose socket is full, or
// that is catching up from the log, has a flusher goroutine until it has
// caught up. For that it uses github.com/gobwas/ws, a maintained library
// that parses and checks RFC 6455 frame headers, masks and close codes
// with no goroutine or buffer of its own, and leaves reading and writing
// to the caller (the handshake, a few lines, is answered through net/http,
// so that the API's access log and request IDs see it as any request):
// github.com/coder/websocket (used before)
// keeps a reading goroutine, buffers and its own framing per connection,
// so a frame could not be built once for many connections. Frames follow
// RFC 6455 exactly: masked client frames, fragmented messages with control
// frames between fragments, pings answered with pongs, close frames echoed
// with their code, invalid UTF-8 closed with 1007, a protocol error with
// 1002.
//
// # Protocol
//
// Every message is one JSON text frame. A client message has a "type" and
// may carry an "id" of its choosing, which the server echoes in the answer
// (and in an error caused by that message).
//
// Client → server:
//
//	{"type":"chat.start","id":"r1","body":{...},"cancel_on_close":false}
//	    body is what POST /v1/chat/completions takes; the answer always
//	    streams. Answered by {"type":"started","id":"r1","stream":"<stream id>"},
//	    then the stream's events. With cancel_on_close the generation stops
//	    when the connection closes (like Sluice-Cancel-On-Disconnect). A
//	    body with "conversation" (and "parent_id") continues a conversation
//	    kept on the server, as over HTTP; "started" then also names it and
//	    the answer's message: "conversation":"conv_…","message":"msg_…".
//	{"type":"stream.attach","id":"r2","stream":"<stream id>","last_event_id":"12-mx59yebt"}
//	    Follow a generation from just after last_event_id ("" or absent: from
//	    its first event). Answered by {"type":"subscribed","id":"r2","stream":...}
//	    then events; or by {"type":"unsubscribed","stream":...,"reason":"ended"}
//	    when the reader has already read the whole ended stream.
//	{"type":"topic.subscribe","id":"r3","topic":"room","last_event_id":"","from":"start"}
//	    Follow a topic: after last_event_id when given, from the oldest kept
//	    event with "from":"start", else only new events. Topics are created on
//	    first use, as over HTTP. Answered by {"type":"subscribed","id":"r3","topic":"room"}.
//	{"type":"topic.publish","id":"r4","topic":"room","event":"optional-name","data":"text" or any JSON}
//	    Answered by {"type":"published","id":"r4","topic":"room","event_id":"17"}.
//	{"type":"stream.cancel","id":"r5","stream":"<stream id>"}
//	    Stop a generation; its readers get its error event (code "cancelled").
//	    Answered by {"type":"cancelled","id":"r5","stream":...,"status":"cancelled"}
//	    (the status is the stream's end: "cancelled", or "done"/"error" when it
//	    had already ended).
//	{"type":"unsubscribe","id":"r6","stream":"<stream id>"}  (or "topic":"room")
//	    Answered by {"type":"unsubscribed","id":"r6","stream":...}; no event of
//	    that subscription follows it.
//
// Server → client, besides the answers above:
//
//	{"type":"event","stream":"<id>","id":"12-mx59yebt","event":"","data":"..."}
//	{"type":"event","topic":"room","id":"17-mx59yeq3","event":"joined","data":"..."}
//	    One log event. id is the event ID an SSE client sees in "id:", event
//	    its "event:" name ("" is "message"), and data the exact data string of
//	    the SSE event (a chat.completion.chunk, [DONE], or {"error":{...}}),
//	    as a JSON string. The last event of a stream also has "end": "done",
//	    "error" or "cancelled", and ends its subscription.
//	{"type":"unsubscribed","topic":"room","reason":"server shutting down; reconnect"}
//	    The server ended a subscription.
//	{"type":"error","id":"r1","stream":"...","error":{"message","type","param","code"}}
//	    A message could not be carried out: OpenAI-style error object, as the
//	    HTTP API answers. The connection stays open.
//
// Several subscriptions share one connection (at most Options.MaxSubscriptions).
// To resume after a dropped connection, attach or subscribe again with the
// last event ID seen: no event is lost or repeated.
//
// # Admission
//
// Connections and what they carry are admitted by the admit.Gate that the
// SSE API uses too. Opening a connection needs an API key when the server
// has keys (Authorization: Bearer on the upgrade request; a browser, which
// cannot set that header on a WebSocket, offers the subprotocols "sluice"
// and "sluice.key.<the key in base64url, unpadded>" instead, and the server
// selects "sluice": the key stays out of the URL), unless it has public
// topics, which a connection without a key may then read; it takes
// one place in the stream limits for as long as it is open. Each message that
// does what an HTTP API request does (chat.start, stream.attach,
// stream.cancel, topic.subscribe, topic.publish) is then admitted as that
// request is, with the same request limits, ownership and topic rules, and
// counts against the caller's rate limit as one request; a refusal is an
// error frame with the error object that HTTP would answer.
//
// # Connection behaviour
//
// The server pings after Options.Heartbeat without sending anything, and
// closes a connection whose ping is not answered within Options.WriteTimeout.
// Frames wait in a per-connection send buffer bounded to Options.SendBuffer
// bytes (the socket's, in the kernel; a subscription that falls behind is
// caught up from its log, which is its buffer, rather than from memory of
// the connection's); a reader that lets it stay full for
// Options.WriteTimeout is cut off with close code 1008 (policy violation)
// and a reason saying so, after the frames it was sent, and should resume
// from its last event IDs. A client that sends messages without reading
// the answers is not read until they fit the send buffer. A message larger than
// Options.MaxMessageBytes closes the connection with 1009. On shutdown, topic
// subscriptions end at once and the connection closes with 1001 (going away)
// once its generations have ended.
package ws
