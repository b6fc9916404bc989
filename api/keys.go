package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
)

// Keys are the API keys the server accepts. Only their SHA-256 hashes are
// kept, and a presented key is compared with every one of them in constant
// time, so neither memory nor timing gives a key away.
type Keys struct {
	ids    []string
	hashes [][sha256.Size]byte
}

// ParseKeys reads a keys file: one key a line, as "name: key" or
// "name: sha256:<hex of the key's SHA-256>" (so that the file need not hold
// the key itself); blank lines and lines starting with # are skipped. A
// line with no name takes "key-<line number>" as its name.
func ParseKeys(text string) (*Keys, error) {
	k := &Keys{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, secret := fmt.Sprintf("key-%d", n), line
		if name, rest, ok := strings.Cut(line, ": "); ok {
			id, secret = strings.TrimSpace(name), strings.TrimSpace(rest)
		}
		var h [sha256.Size]byte
		if hexed, ok := strings.CutPrefix(secret, "sha256:"); ok {
			b, err := hex.DecodeString(hexed)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("line %d: sha256: takes 64 hex digits", n)
			}
			copy(h[:], b)
		} else {
			if len(secret) < 16 {
				return nil, fmt.Errorf("line %d: a key must have at least 16 characters", n)
			}
			h = sha256.Sum256([]byte(secret))
		}
		if seen[id] {
			return nil, fmt.Errorf("line %d: the name %q is used twice", n, id)
		}
		seen[id] = true
		k.ids = append(k.ids, id)
		k.hashes = append(k.hashes, h)
	}
	if len(k.ids) == 0 {
		return nil, fmt.Errorf("no keys")
	}
	return k, nil
}

// Len reports how many keys there are.
func (k *Keys) Len() int { return len(k.ids) }

// lookup returns the name of the key presented, comparing it with every
// key so that the time taken does not depend on which one matched.
func (k *Keys) lookup(presented string) (string, bool) {
	h := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.hashes {
		if subtle.ConstantTimeCompare(h[:], k.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return k.ids[found], true
}

var (
	errNoKey = &sluice.Error{Code: sluice.EUNAUTHORIZED, Kind: "missing_api_key",
		Message: "This server needs an API key: send it as 'Authorization: Bearer <key>'."}
	errBadKey = &sluice.Error{Code: sluice.EUNAUTHORIZED, Kind: "invalid_api_key",
		Message: "The API key is not valid."}
	errNotYours = &sluice.Error{Code: sluice.EFORBIDDEN, Kind: "stream_of_another_key",
		Message: "This stream was started with another API key."}
)

// caller returns the name of the API key that r presents: "" when the
// server has no keys. With keys, a request without one is an error unless
// optional is set; a wrong key is always one.
func (s *Server) caller(r *http.Request, optional bool) (string, error) {
	if s.cfg.Keys == nil {
		return "", nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if optional {
			return "", nil
		}
		return "", errNoKey
	}
	scheme, key, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errBadKey
	}
	id, ok := s.cfg.Keys.lookup(strings.TrimSpace(key))
	if !ok {
		return "", errBadKey
	}
	return id, nil
}

// MayUse reports, as an error, whether the caller who may read or stop
// log l.
func MayUse(who string, l sluice.Log) error {
	if owner := l.Owner(); owner != "" && owner != who {
		return errNotYours
	}
	return nil
}

// enter admits a request to the API: it finds the caller's key (see
// caller) and takes one request from the caller's rate budget. On refusal
// it has answered, and reports false.
func (s *Server) enter(w http.ResponseWriter, r *http.Request, optionalKey bool) (string, bool) {
	who, err := s.caller(r, optionalKey)
	if err == nil {
		budget := who
		if budget == "" {
			budget = "addr:" + clientAddr(r)
		}
		err = s.guard.allow(budget, time.Now())
	}
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		}
		writeError(w, r, s.log, err)
		return "", false
	}
	return who, true
}
