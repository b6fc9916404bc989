package ws

import (
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

func invalid(param, kind, msg string) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Kind: kind, Message: msg}
}

// badJSON explains why a message is not a valid request.
func badJSON(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return &sluice.Error{Code: sluice.EINVALID, Param: typ.Field, Kind: "invalid_type", Err: err,
			Message: "Invalid type for '" + typ.Field + "'."}
	}
	return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
		Message: "We could not parse the JSON message: " + err.Error() + "."}
}

// truncate shortens a client-given string quoted back in a message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
