package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

var errEmptyBody = errors.New("the body is empty")

// readBody reads the whole request body, refusing more than max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, bodyError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, bodyError(errEmptyBody)
	}
	return b, nil
}

// decodeJSON reads the body as one JSON value into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	b, err := readBody(w, r, max)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return bodyError(err)
	}
	return nil
}

// emptyBody reports whether err is readBody's answer to an empty body.
func emptyBody(err error) bool { return errors.Is(err, errEmptyBody) }
