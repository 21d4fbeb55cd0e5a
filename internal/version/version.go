// Package version says which build a Potluck binary is: the release string
// the Makefile stamps in, the commit and whether the tree was modified (from
// the Go toolchain's VCS stamp), and the Go version, so that the nodes of a
// rolling upgrade can be told apart.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// release and commit are set at link time; the Makefile passes
//
//	-ldflags "-X potluck/internal/version.release=$(git describe --always --dirty)
//	          -X potluck/internal/version.commit=$(git rev-parse HEAD)"
//
// commit covers builds without the toolchain's VCS stamp (GOFLAGS=-buildvcs=false,
// a tree copied without .git). Unexported so that nothing changes them at run time.
var release, commit string

// Info describes one build.
type Info struct {
	Version   string `json:"version"`            // release, else the module version, else "devel"
	Commit    string `json:"commit,omitempty"`   // full VCS revision, if stamped
	Modified  bool   `json:"modified,omitempty"` // the tree had uncommitted changes
	Time      string `json:"time,omitempty"`     // commit time (RFC 3339), if stamped
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// Get is this binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(release, commit, bi)
}

// FromBuildInfo combines the link-time release and commit with the
// toolchain's build info (nil when the binary carries none); the toolchain's
// VCS stamp wins over rev.
func FromBuildInfo(rel, rev string, bi *debug.BuildInfo) Info {
	info := Info{Version: rel, Commit: rev, GoVersion: runtime.Version()}
	goos, goarch := runtime.GOOS, runtime.GOARCH
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			case "vcs.time":
				info.Time = s.Value
			case "GOOS":
				goos = s.Value
			case "GOARCH":
				goarch = s.Value
			}
		}
		if info.Version == "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	info.Platform = goos + "/" + goarch
	return info
}

// String is one line: "v1.2.0-3-gabc1234, commit abc1234… (modified) 2026-12-02T06:00:00Z, go1.26.8 linux/amd64".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Commit != "" {
		fmt.Fprintf(&b, ", commit %s", i.Commit)
		if i.Modified {
			b.WriteString(" (modified)")
		}
		if i.Time != "" {
			fmt.Fprintf(&b, " %s", i.Time)
		}
	} else {
		b.WriteString(", commit unknown")
	}
	fmt.Fprintf(&b, ", %s %s", i.GoVersion, i.Platform)
	return b.String()
}
