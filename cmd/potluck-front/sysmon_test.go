package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/freeport"
	"potluck/internal/mainexec"
)

func TestMain(m *testing.M) { mainexec.Main(m, main) }

// TestMainKeepsSysmonAwake: a running potluck-front has GODEBUG's
// schedtrace set (procs.KeepSysmonAwake, docs/agents.md), unless its
// environment sets schedtrace, which it keeps; and it keeps its name
// (executed again through /proc/self/exe it was called "exe").
func TestMainKeepsSysmonAwake(t *testing.T) {
	for _, tc := range []struct{ godebug, want string }{
		{godebug: "", want: "GODEBUG=schedtrace=2147483647"},
		{godebug: "schedtrace=0", want: "GODEBUG=schedtrace=0"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			addr, err := freeport.TCP()
			require.NoError(t, err)
			config := filepath.Join(t.TempDir(), "front.yaml")
			require.NoError(t, os.WriteFile(config, []byte(`listen: ["`+addr+`"]
admin: ""
routes:
  - default: true
    backends: [127.0.0.1:1]
`), 0o600))
			cmd := mainexec.Command("--config", config, "--log-level", "warn")
			cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			cmd.Stderr = os.Stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			})
			require.Eventually(t, func() bool { // serving: past any re-execution
				c, err := net.Dial("tcp", addr)
				if err == nil {
					_ = c.Close()
				}
				return err == nil
			}, 10*time.Second, 20*time.Millisecond)
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
			require.NoError(t, err)
			var godebug []string
			for _, kv := range strings.Split(string(environ), "\x00") {
				if strings.HasPrefix(kv, "GODEBUG=") {
					godebug = append(godebug, kv)
				}
			}
			require.Equal(t, []string{tc.want}, godebug)
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
			require.NoError(t, err)
			name := filepath.Base(os.Args[0])
			require.Equal(t, name[:min(len(name), 15)], strings.TrimSpace(string(comm)), "the process keeps its name (ps, pgrep)")
		})
	}
}
