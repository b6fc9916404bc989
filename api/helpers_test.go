package api_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestMain fails the run if any goroutine outlives the tests: every stream
// must end on cancel, disconnect, shutdown and error.
// It also stops the PostgreSQL server that conversation tests started.
func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m) }

// env is a Sluice API server on a loopback port, with the demo model (as
// fast as it goes unless envOptions say otherwise) and any test models.
type (
	env        = testenv.Server
	envOptions = testenv.Options
)

var (
	newEnv   = testenv.NewServer
	chatBody = testenv.ChatBody
	// events reads a stream's events, to its end when max < 0.
	events = testenv.Events
	// content joins the delta contents of chat chunk events, and reports
	// the data of the last event.
	content = testenv.EventsText
)

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decoding %s response: %v", resp.Status, err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// stepModel is the scripted model of internal/testenv.
type stepModel = testenv.StepModel

// readLine reads one raw line of an SSE body, for byte-level checks.
func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v", err)
	}
	return line
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
