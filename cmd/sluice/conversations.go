package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/postgres"
	"github.com/sluice-dev/sluice/sqlite"
)

// convConfig says where conversations are kept: SQLite in DataDir (the
// default, so that `go run ./cmd/sluice` keeps them across restarts with
// nothing to configure), or PostgreSQL at DatabaseURL for several nodes.
type convConfig struct {
	DataDir     string // "off": keep none; "": no user data directory was found
	DatabaseURL string
	Stale       time.Duration // an answer whose writer was quiet this long is marked interrupted
}

// dataDirOff is the --data-dir value that keeps no conversations.
const dataDirOff = "off"

func (c *convConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir(getenv), "directory of the SQLite database of conversations (sluice.db); 'off' keeps no conversations")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "keep conversations in PostgreSQL instead, shared by every node given the same, e.g. postgres://user:password@host:5432/sluice")
	fs.DurationVar(&c.Stale, "conversation-stale", convo.DefaultStale, "mark an answer interrupted when the node writing it has been silent this long (it died); every node sweeps a quarter as often")
}

func (c *convConfig) validate() error {
	var errs []error
	if c.Stale <= 0 {
		errs = append(errs, fmt.Errorf("--conversation-stale (%s): must be positive, got %v", envName("conversation-stale"), c.Stale))
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, fmt.Errorf("--database-url (%s): want postgres://[user:password@]host[:port]/database", envName("database-url")))
		}
	}
	return errors.Join(errs...)
}

// defaultDataDir is the `sluice` folder in the user's data directory, as
// each system places it; "" when the environment names none (no HOME).
func defaultDataDir(getenv func(string) string) string {
	switch runtime.GOOS {
	case "windows":
		if d := getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "sluice")
		}
		return ""
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support", "sluice")
		}
		return ""
	}
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "sluice")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "sluice")
	}
	return ""
}

// openConversations opens the conversation store cfg names, with its
// migrations applied, or returns nil when conversations are off.
func openConversations(ctx context.Context, cfg convConfig, log *slog.Logger) (sluice.ConversationStore, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case cfg.DatabaseURL != "":
		s, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("--database-url (%s): %w", envName("database-url"), err)
		}
		log.Info("conversations kept in PostgreSQL")
		return s, nil
	case cfg.DataDir == dataDirOff:
		log.Info("conversations are off (--data-dir off)")
		return nil, nil
	case cfg.DataDir == "":
		log.Warn("no user data directory found (HOME is not set): conversations are not kept; set --data-dir")
		return nil, nil
	}
	path := filepath.Join(cfg.DataDir, "sluice.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--data-dir (%s): %w", envName("data-dir"), err)
	}
	log.Info("conversations kept in SQLite", "path", path)
	return s, nil
}
