package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"potluck/core/fsm"
)

// MaxPublicURL bounds a Front's public URL.
const MaxPublicURL = 256

// checkPublicURL accepts http(s)://host[:port] with nothing after it.
func checkPublicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || len(s) > MaxPublicURL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("public_url must be the Front's public address as http(s)://host[:port], e.g. http://203.0.113.9")
	}
	return nil
}

// setHost commits a change a host made by registering again (command t, h
// holding the host's id and the new values); false when it answered an
// error.
func (s *Server) setHost(w http.ResponseWriter, r *http.Request, t fsm.CommandType, h *fsm.Host) bool {
	res, err := s.node.Decide(r.Context(), "", func(*fsm.State, time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: t, Host: h}, nil
	})
	return s.writeResult(w, res, err)
}

// MaxRegion bounds a host's region name.
const MaxRegion = 63

// checkRegion accepts an empty region or 1 to 63 of a-z, 0-9, '-', '_', '.'.
func checkRegion(s string) error {
	if len(s) > MaxRegion || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fmt.Errorf("region %q: use up to %d of a-z, 0-9, '-', '_', '.' (e.g. eu-west)", s, MaxRegion)
	}
	return nil
}
