package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"potluck/core/fsm"
)

// PeersFile is the file in the raft data directory that forces a new
// membership at the next start, for a group that lost its quorum for good
// (hashicorp/raft's peers.json recovery): every surviving node gets the
// same file, listing the survivors, and starts from what it holds.
const PeersFile = "peers.json"

// recoverFromPeersJSON rewrites the membership stored in the data directory
// to the one in peers.json, when that file exists, and renames the file so
// that it applies once. The node keeps its log and snapshots; what the lost
// nodes held and it did not is gone.
func recoverFromPeersJSON(cfg Config, rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) error {
	path := filepath.Join(cfg.DataDir, PeersFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w (want [{\"id\": \"core1\", \"address\": \"host:port\"}, ...])", path, err)
	}
	self := false
	for _, s := range conf.Servers {
		self = self || string(s.ID) == cfg.ID
	}
	if !self {
		return fmt.Errorf("cluster: %s does not list this node %q", path, cfg.ID)
	}
	// RecoverCluster replays the log into an FSM of its own and writes a
	// snapshot with the new membership; the node's FSM restores from it.
	if err := raft.RecoverCluster(rc, fsm.New(), logs, stable, snaps, trans, conf); err != nil {
		return fmt.Errorf("cluster: recover from %s: %w", path, err)
	}
	if err := os.Rename(path, path+".applied"); err != nil {
		return fmt.Errorf("cluster: %w (remove %s by hand before the next start)", err, path)
	}
	cfg.Logger.Warn("raft membership replaced from peers.json (quorum-loss recovery)", "voters", len(conf.Servers), "file", path+".applied")
	return nil
}
