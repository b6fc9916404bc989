package sse

import (
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/encoding/unicode"
)

// specResult is what a stream means, as specParse reads it.
type specResult struct {
	events   []Event
	lastID   string
	retry    time.Duration
	hasRetry bool
}

// specParse is an oracle for Reader: the WHATWG "interpreting an event
// stream" steps, transcribed as directly as possible over the whole stream,
// with no buffering, no limits and no care for speed. It decodes with
// golang.org/x/text's UTF-8 decoder, which strips a leading BOM and
// replaces ill-formed input as the Encoding Standard does, so the oracle
// does not share Reader's decoding code either.
func specParse(stream []byte) specResult {
	text, err := unicode.UTF8BOM.NewDecoder().Bytes(stream)
	if err != nil {
		panic(err) // the decoder replaces; it never fails
	}
	s := string(text)
	var (
		res             specResult
		data, eventType strings.Builder
		idBuffer        string
		hasID           bool
		newRetry        time.Duration
	)
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break // a line without its end is never processed
		}
		line := s[:i]
		if strings.HasPrefix(s[i:], "\r\n") {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		if line == "" { // dispatch the event
			res.lastID = idBuffer
			if data.Len() == 0 {
				data.Reset()
				eventType.Reset()
				continue
			}
			d := strings.TrimSuffix(data.String(), "\n")
			res.events = append(res.events, Event{ID: res.lastID, HasID: hasID, Name: eventType.String(), Data: d, Retry: newRetry})
			data.Reset()
			eventType.Reset()
			hasID, newRetry = false, 0
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			eventType.Reset()
			eventType.WriteString(value)
		case "data":
			data.WriteString(value)
			data.WriteString("\n")
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuffer, hasID = value, true
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				// Saturate where a Duration cannot hold the value.
				d := time.Duration(math.MaxInt64)
				if ms, err := strconv.ParseInt(value, 10, 64); err == nil && ms <= math.MaxInt64/int64(time.Millisecond) {
					d = time.Duration(ms) * time.Millisecond
				}
				res.retry, res.hasRetry, newRetry = d, true, d
			}
		}
	}
	return res
}
