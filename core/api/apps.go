package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"potluck/core/blobs"
	"potluck/core/fsm"
)

// imagePattern is an image reference of at most 255 characters, such as
// registry.example/team/app:1.2 or app@sha256:....
var imagePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$`)

// patternUpload is the route of tarball uploads (its body limit is
// MaxUploadBytes, not MaxBodyBytes).
const patternUpload = "POST /v1/apps/{name}/tarball"

type createAppRequest struct {
	Name          string `json:"name"`
	Image         string `json:"image"`
	ContainerPort int    `json:"container_port"`
}

func (req *createAppRequest) check() error {
	var p problems
	p.addErr(checkNewName("app", req.Name))
	if !imagePattern.MatchString(req.Image) {
		p.add("image must be an image reference such as registry.example/team/app:1.2")
	}
	// An image app names its port: nothing reads it from an image it
	// never sees (an upload's port may come from its EXPOSE instead).
	if req.ContainerPort < 1 || req.ContainerPort > MaxPort {
		p.add("container_port must be 1-%d", MaxPort)
	}
	return p.err()
}

// uploadPort reads ?container_port= of a tarball upload (0 when absent).
func uploadPort(r *http.Request) (int, error) {
	p := r.URL.Query().Get("container_port")
	if p == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > MaxPort {
		return 0, fmt.Errorf("container_port must be 1-%d", MaxPort)
	}
	return n, nil
}

// AppView is an app with the installations that use it.
type AppView struct {
	*fsm.App
	UsedBy []string `json:"used_by"`
}

func appView(st *fsm.State, a *fsm.App) AppView {
	used := st.AppInUse(a.Name)
	if used == nil {
		used = []string{}
	}
	return AppView{App: a, UsedBy: used}
}

func (s *Server) createImageApp(w http.ResponseWriter, r *http.Request) {
	var req createAppRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return createOrPush(st, &fsm.App{Name: req.Name, Image: req.Image, ContainerPort: req.ContainerPort}), nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeApp(w, res.Ref)
}

// createOrPush creates an app, or adds a version to the app of that name.
func createOrPush(st *fsm.State, a *fsm.App) *fsm.Command {
	if _, ok := st.Apps[a.Name]; ok {
		return &fsm.Command{Type: fsm.CmdPushAppVersion, App: a}
	}
	return &fsm.Command{Type: fsm.CmdCreateApp, App: a}
}

// writeApp answers the committed write named by ref: 201 when it created
// the app, 200 when it added a version. The status comes from the write's
// record, never from the app's state now: a retry after others pushed
// versions or deleted the app gets the answer of its own write. The body
// is the app as it is now, or just its name and the version made when it
// is gone.
func (s *Server) writeApp(w http.ResponseWriter, ref string) {
	name, version := fsm.ParseAppVersionRef(ref)
	code := http.StatusCreated
	if version > 1 {
		code = http.StatusOK
	}
	st := s.node.State()
	if a := st.Apps[name]; a != nil {
		writeJSON(w, code, appView(st, a))
		return
	}
	writeJSON(w, code, map[string]any{"name": name, "version": version})
}

// uploadApp stores a `docker save` tarball in the blob store, then commits
// the app; a blob that no app ended up using is removed again.
func (s *Server) uploadApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkNewName("app", name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	port, err := uploadPort(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A retried upload is answered from the record before reading the body.
	if rec, ok := s.node.Lookup(requestID(r)); ok && rec.Error == "" {
		s.writeApp(w, rec.Ref)
		return
	}
	// leaderOnly refused a declared length over the limit; a chunked body
	// is cut at it by Put.
	info, err := s.cfg.Blobs.Put(r.Body, s.cfg.MaxUploadBytes, "")
	if err != nil {
		var inv *blobs.InvalidError
		switch {
		case errors.Is(err, blobs.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image tarball larger than the limit of %d bytes", s.cfg.MaxUploadBytes))
		case errors.Is(err, blobs.ErrUncompressedTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		case errors.As(err, &inv):
			writeError(w, http.StatusBadRequest, err.Error()+" (upload the output of `docker save IMAGE`)")
		default:
			writeError(w, http.StatusBadRequest, "reading the upload failed: "+err.Error())
		}
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return createOrPush(st, &fsm.App{Name: name, Image: info.Image, Digest: info.Digest, Size: info.Size, UncompressedSize: info.Uncompressed, ContainerPort: port}), nil
	})
	if err != nil || res.Err != nil {
		s.removeUnusedBlob(info.Digest)
	}
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeApp(w, res.Ref)
}

func (s *Server) removeUnusedBlob(digest string) {
	for _, a := range s.node.State().Apps {
		if slices.Contains(a.Digests(), digest) {
			return
		}
	}
	if err := s.cfg.Blobs.Remove(digest); err != nil {
		s.log.Warn("remove unused blob", "digest", digest, "err", err)
	}
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	writePage(s, w, r, st.SortedApps(), func(a *fsm.App) string { return a.Name },
		func(a *fsm.App) AppView { return appView(st, a) })
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	a := st.Apps[r.PathValue("name")]
	if a == nil {
		s.notFound(w, fmt.Sprintf("no app %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, appView(st, a))
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var digests []string
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		if a := st.Apps[name]; a != nil {
			digests = a.Digests()
		}
		return &fsm.Command{Type: fsm.CmdDeleteApp, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	for _, digest := range digests {
		s.removeUnusedBlob(digest)
	}
	w.WriteHeader(http.StatusNoContent)
}

// getBlob serves an app's image tarball from this node's blob store (core
// nodes replicate blobs from each other through it).
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if _, err := blobs.ParseDigest(digest); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, size, err := s.cfg.Blobs.Open(digest)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("blob %s is not on this node", digest))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", time.Time{}, f)
}
