package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/storetest"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m) }

// prefixes keeps the stores of one Redis apart.
var prefixes atomic.Int64

// newStore returns a store on url with a prefix of its own, closed when t
// ends.
func newStore(t *testing.T, url string, o Options) *Store {
	t.Helper()
	o.URL = url
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("t%d", prefixes.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func contract(url string) storetest.NewStore {
	return func(t *testing.T, o storetest.Options) sluice.Store {
		return newStore(t, url, Options{Retention: o.Retention})
	}
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, contract(testenv.StartRedis(t).URL))
}

func TestStoreContractOnACluster(t *testing.T) {
	c := testenv.StartRedisCluster(t)
	storetest.Run(t, contract("redis://"+c.Addrs[0]))
}
