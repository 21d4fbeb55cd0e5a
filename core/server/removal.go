package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// removedMarker is the file in the data directory that records that this
// node was removed from its raft group, so that a restart does not bring
// back a member serving an old state.
const removedMarker = "REMOVED"

// onRemoved runs once when the API learns that this node was removed from
// the raft group: it records that in the data directory, stops the
// background loops and raft, and tells Removed's waiters (potluck-core
// exits). The API answers 410 from then on.
func (s *Server) onRemoved() {
	msg := fmt.Sprintf("core node %s was removed from its cluster at %s; this data directory must not serve again: empty it and start with --join to add the node back\n", s.cfg.NodeID, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(s.cfg.DataDir, removedMarker), []byte(msg), 0o600); err != nil {
		s.log.Error("record the removal in the data directory", "err", err)
	}
	if s.cancel != nil {
		s.cancel()
	}
	if err := s.Node.Raft.Shutdown().Error(); err != nil {
		s.log.Warn("raft shutdown after removal", "err", err)
	}
	close(s.removed)
}

// Removed is closed when this node was removed from its raft group.
func (s *Server) Removed() <-chan struct{} { return s.removed }

// checkNotRemoved refuses a data directory whose node was removed.
func checkNotRemoved(dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, removedMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return fmt.Errorf("server: %s", strings.TrimSpace(string(b)))
}
