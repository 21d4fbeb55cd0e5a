package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"potluck/bench/nginxconf"
)

// The two proxies get equivalent configs: the same upstream servers with
// max_fails=1 fail_timeout=20s, keep-alive, the client's Host passed on,
// X-Forwarded-* and X-Real-IP added, no access log.

func writeNginxConf(dir, listen string, backends []string) error {
	conf := nginxconf.Config(dir, nginxconf.Site{Listen: listen, Backends: backends})
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600)
}

func writeFrontConf(dir, name, listen, admin string, backends []string, extra string) error {
	conf := fmt.Sprintf("listen: [%q]\nadmin: %q\n%sroutes:\n  - default: true\n    backends: [%s]\n",
		listen, admin, extra, strings.Join(backends, ", "))
	return os.WriteFile(filepath.Join(dir, name), []byte(conf), 0o600)
}
