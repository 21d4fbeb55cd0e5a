package api

// withHeartbeat adds when the host last heartbeated, if this node leads and
// heard from it: heartbeat times live in the leader's memory only, so a
// ?stale read on a follower shows none.
func (s *Server) withHeartbeat(v HostView) HostView {
	if s.cfg.LastHeartbeat == nil || v.Host == nil {
		return v
	}
	if t, ok := s.cfg.LastHeartbeat(v.ID); ok {
		v.LastHeartbeat = &t
	}
	return v
}
