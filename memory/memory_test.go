package memory

import (
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) sluice.Store {
		s := New(Options{Retention: o.Retention})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
