package api

import (
	"errors"
	"fmt"
	"net/http"

	"potluck/core/cluster"
)

// This file serves disaster recovery: a consistent snapshot of the whole
// replicated state streamed to the operator, and a snapshot restored into
// a (fresh) cluster. Both run on the leader.

// SnapshotView answers a restore.
type SnapshotView struct {
	cluster.BackupHeader
	Restored bool `json:"restored"`
}

// saveSnapshot streams the state as the leader holds it after a barrier.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="potluck-core.snap"`)
	hdr, err := s.node.WriteBackup(w)
	if err != nil {
		h.Del("Content-Disposition")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("snapshot: %v; retry", err))
		return
	}
	s.log.Info("snapshot saved by the operator", "index", hdr.Index, "bytes", hdr.Size)
}

// restoreSnapshot replaces the replicated state with the uploaded snapshot.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes+cluster.MaxBackupHeader)
	hdr, err := s.node.RestoreBackup(body, s.cfg.MaxUploadBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("snapshot larger than the limit of %d bytes (--max-upload-mb)", s.cfg.MaxUploadBytes))
		case errors.Is(err, cluster.ErrNotLeader):
			writeError(w, http.StatusServiceUnavailable, "leadership changed during the restore; retry")
		case isRaftError(err):
			writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry")
		default:
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	writeJSON(w, http.StatusOK, SnapshotView{BackupHeader: hdr, Restored: true})
}

// isRaftError tells raft's failures (worth a retry) from a bad file.
func isRaftError(err error) bool {
	var re *cluster.RestoreError
	return errors.As(err, &re)
}
