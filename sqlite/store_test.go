package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convtest"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m) }

// open opens the database at path for t, failing t when it cannot.
func open(t *testing.T, path string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConversationStoreContract(t *testing.T) {
	convtest.Run(t, func(t *testing.T) convtest.Open {
		path := filepath.Join(t.TempDir(), "sluice.db")
		return func(t *testing.T) sluice.ConversationStore { return open(t, path) }
	})
}
