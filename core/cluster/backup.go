package cluster

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"potluck/core/fsm"
	"potluck/internal/version"
)

// A backup is the replicated state at one raft index, for disaster
// recovery: one JSON line (BackupHeader) and then the FSM's snapshot
// encoding of the state, Size bytes with the SHA-256 of the header. The
// state is the FSM's own snapshot format (pinned by core/fsm's golden
// test), so a backup restores into a cluster of this or a later version.

// BackupFormat names the format in the header.
const BackupFormat = "potluck-core-snapshot/1"

// MaxBackupHeader bounds the header line.
const MaxBackupHeader = 64 << 10

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format  string       `json:"format"`
	Index   uint64       `json:"index"` // the state index it holds
	Node    string       `json:"node"`  // the node that wrote it (the leader)
	Created time.Time    `json:"created"`
	Build   version.Info `json:"build"`
	Size    int64        `json:"size"`
	SHA256  string       `json:"sha256"`
}

// WriteBackup writes the state as the leader holds it after applying every
// committed write, confirmed by a barrier started after the call (a leader
// deposed while paused fails it), so the backup holds each acknowledged write.
func (n *Node) WriteBackup(w io.Writer) (BackupHeader, error) {
	if err := n.ReadBarrier(); err != nil {
		return BackupHeader{}, err
	}
	return EncodeBackup(w, n.FSM.State(), n.cfg.ID, n.cfg.Now())
}

// EncodeBackup writes st as a backup.
func EncodeBackup(w io.Writer, st *fsm.State, node string, now time.Time) (BackupHeader, error) {
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(st); err != nil {
		return BackupHeader{}, fmt.Errorf("encode state: %w", err)
	}
	sum := sha256.Sum256(body.Bytes())
	h := BackupHeader{Format: BackupFormat, Index: st.Index, Node: node, Created: now.UTC(), Build: version.Get(), Size: int64(body.Len()), SHA256: hex.EncodeToString(sum[:])}
	line, err := json.Marshal(h)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("encode snapshot header: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return BackupHeader{}, fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(body.Bytes()); err != nil {
		return BackupHeader{}, fmt.Errorf("write snapshot: %w", err)
	}
	return h, nil
}

// ReadBackup reads and checks a backup of at most limit bytes of state: the
// format, the size and the checksum, and that the state decodes.
func ReadBackup(r io.Reader, limit int64) (BackupHeader, []byte, error) {
	br := bufio.NewReaderSize(r, 4096)
	line, err := readLine(br, MaxBackupHeader)
	if err != nil {
		return BackupHeader{}, nil, fmt.Errorf("snapshot header: %w", err)
	}
	var h BackupHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format == "" {
		return BackupHeader{}, nil, errors.New("not a potluck-core snapshot (save one with `potluck-core snapshot save`)")
	}
	if h.Format != BackupFormat {
		return BackupHeader{}, nil, fmt.Errorf("snapshot format %q is not %q, which this version reads", h.Format, BackupFormat)
	}
	if h.Size <= 0 || h.Size > limit {
		return BackupHeader{}, nil, fmt.Errorf("snapshot of %d bytes: want 1 to %d", h.Size, limit)
	}
	body := make([]byte, h.Size)
	if _, err := io.ReadFull(br, body); err != nil {
		return BackupHeader{}, nil, fmt.Errorf("snapshot cut short (%d bytes announced): %w", h.Size, err)
	}
	if n, _ := br.Read(make([]byte, 1)); n > 0 {
		return BackupHeader{}, nil, errors.New("snapshot has bytes after its state")
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h.SHA256 {
		return BackupHeader{}, nil, errors.New("snapshot checksum does not match: the file is damaged")
	}
	if err := fsm.New().Restore(io.NopCloser(bytes.NewReader(body))); err != nil {
		return BackupHeader{}, nil, err
	}
	return h, body, nil
}

func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("longer than %d bytes", max)
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// RestoreError is raft failing to install a backup that was read fine.
type RestoreError struct{ Err error }

func (e *RestoreError) Error() string { return "raft restore: " + e.Err.Error() }
func (e *RestoreError) Unwrap() error { return e.Err }

// RestoreBackup replaces the whole replicated state with a backup (leader
// only): raft installs it as a snapshot on every member, and later writes
// go on from there. The raft membership stays this cluster's.
func (n *Node) RestoreBackup(r io.Reader, limit int64) (BackupHeader, error) {
	if !n.IsLeader() {
		return BackupHeader{}, ErrNotLeader
	}
	h, body, err := ReadBackup(r, limit)
	if err != nil {
		return BackupHeader{}, err
	}
	n.decideMu.Lock()
	defer n.decideMu.Unlock()
	n.proposals.Wait() // decisions in flight land before the state is replaced
	n.draft = nil
	// The state's index must not go back (blocking queries and watchers
	// wait for it to pass what they saw), and should be the raft index the
	// restore gets: raft places it at max(its last index, meta.Index)+1.
	target := max(h.Index, n.Raft.LastIndex()+1)
	st := fsm.NewState()
	if err := json.Unmarshal(body, st); err != nil {
		return BackupHeader{}, fmt.Errorf("decode snapshot: %w", err)
	}
	st.Index = target
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(st); err != nil {
		return BackupHeader{}, fmt.Errorf("encode snapshot: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: target - 1, Size: int64(buf.Len())}
	if err := n.Raft.Restore(meta, &buf, n.cfg.ApplyTimeout); err != nil {
		return BackupHeader{}, &RestoreError{Err: err}
	}
	n.log.Warn("replicated state replaced by a snapshot", "snapshot_index", h.Index, "written_by", h.Node, "created", h.Created)
	return h, nil
}
