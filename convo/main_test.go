package convo_test

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m) }
