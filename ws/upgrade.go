package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice"
)

// The handshake (RFC 6455 4.2) is answered through the ResponseWriter, a
// 101 with w.Header(), and only then is the connection taken over: what
// wraps the handler (the API's access log and request IDs) sees the status
// and adds its headers, as for any request. gobwas/ws's HTTPUpgrader would
// take the connection over first and write the answer itself.

// checkHandshake reports why r is not a WebSocket opening handshake that
// this server takes, or nil.
func checkHandshake(r *http.Request) error {
	bad := func(msg string) error {
		return &sluice.Error{Code: sluice.EINVALID, Kind: "bad_websocket_handshake", Message: msg}
	}
	switch {
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return bad("A WebSocket is opened over HTTP/1.1.")
	case !hasToken(r.Header, "Upgrade", "websocket") || !hasToken(r.Header, "Connection", "upgrade"):
		return bad("This is the WebSocket endpoint: open it with 'Upgrade: websocket' and 'Connection: Upgrade'.")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return bad("Only WebSocket version 13 (RFC 6455) is spoken here.")
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return bad("'Sec-WebSocket-Key' must be 16 bytes in base64.")
	}
	return nil
}

// hasToken reports whether a comma-separated header holds token, in any
// case.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey is Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// answerHandshake sets the headers of the 101 that accepts r and writes it.
// The subprotocol "sluice" is selected when offered; a key offered as a
// subprotocol is never named back.
func answerHandshake(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(r.Header.Get("Sec-WebSocket-Key")))
	if hasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		h.Set("Sec-WebSocket-Protocol", Subprotocol)
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
}
