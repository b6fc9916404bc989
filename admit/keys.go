package admit

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

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
