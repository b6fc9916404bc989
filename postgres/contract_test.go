package postgres

import (
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convtest"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestContract runs the ConversationStore contract, each test on a
// database of its own on the package's PostgreSQL server; reopening is
// opening the same database again, as a restarted node does.
func TestContract(t *testing.T) {
	convtest.Run(t, func(t *testing.T) convtest.Open {
		url := testenv.StartPostgres(t)
		return func(t *testing.T) sluice.ConversationStore {
			s, err := Open(ctxFor(t), url)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return s
		}
	})
}
