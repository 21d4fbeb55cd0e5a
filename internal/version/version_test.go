package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFromBuildInfo(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "potluck", Version: "v0.0.0-20261202063000-627b42e5f0aa+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8"},
			{Key: "vcs.time", Value: "2026-12-02T06:30:00Z"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "GOOS", Value: "linux"},
			{Key: "GOARCH", Value: "arm64"},
		},
	}
	for _, tc := range []struct {
		name    string
		release string
		commit  string
		bi      *debug.BuildInfo
		want    Info
		line    string
	}{
		{"release from the Makefile", "v1.2.0-3-g627b42e-dirty", "0000000000000000000000000000000000000000", stamped,
			Info{Version: "v1.2.0-3-g627b42e-dirty", Commit: "627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8", Modified: true, Time: "2026-12-02T06:30:00Z", GoVersion: "go1.26.8", Platform: "linux/arm64"},
			"v1.2.0-3-g627b42e-dirty, commit 627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8 (modified) 2026-12-02T06:30:00Z, go1.26.8 linux/arm64"},
		{"plain go build: the module version", "", "", stamped,
			Info{Version: "v0.0.0-20261202063000-627b42e5f0aa+dirty", Commit: "627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8", Modified: true, Time: "2026-12-02T06:30:00Z", GoVersion: "go1.26.8", Platform: "linux/arm64"},
			"v0.0.0-20261202063000-627b42e5f0aa+dirty, commit 627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8 (modified) 2026-12-02T06:30:00Z, go1.26.8 linux/arm64"},
		{"no VCS stamp (go test, go run)", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "devel", GoVersion: "go1.26.8", Platform: runtime.GOOS + "/" + runtime.GOARCH},
			"devel, commit unknown, go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH},
		{"Makefile without VCS stamp (-buildvcs=false)", "v1.2.0-dirty", "627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "v1.2.0-dirty", Commit: "627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8", GoVersion: "go1.26.8", Platform: runtime.GOOS + "/" + runtime.GOARCH},
			"v1.2.0-dirty, commit 627b42e5f0aa1b2c3d4e5f60718293a4b5c6d7e8, go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH},
		{"no build info", "v1", "", nil,
			Info{Version: "v1", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH},
			"v1, commit unknown, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromBuildInfo(tc.release, tc.commit, tc.bi)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.line, got.String())
		})
	}
	require.NotEmpty(t, Get().GoVersion)
}
