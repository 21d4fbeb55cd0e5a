// Package nginxconf writes the NGINX configuration the benchmarks run NGINX
// with, so every comparison with potluck-front gives NGINX the same setup:
// one upstream per site with keep-alive connections, max_fails=1
// fail_timeout=20s (potluck-front's defaults), the client's Host passed on,
// the X-Forwarded-* and X-Real-IP headers potluck-front adds, no access log,
// every temporary file under the run's directory.
package nginxconf

import (
	"fmt"
	"strings"
)

// Site is one server block: NGINX listens on Listen and, for requests whose
// Host is Name (any Host when Name is empty), proxies to Backends.
type Site struct {
	Name     string
	Listen   string
	Backends []string
	// MaxBody is client_max_body_size ("0": no limit); empty: NGINX's 1m.
	MaxBody string
}

// Config is the whole nginx.conf for sites, with its pid, logs and
// temporary files in dir.
func Config(dir string, sites ...Site) string {
	var blocks strings.Builder
	for i, s := range sites {
		fmt.Fprintf(&blocks, "    upstream app%d {\n", i)
		for _, b := range s.Backends {
			fmt.Fprintf(&blocks, "        server %s max_fails=1 fail_timeout=20s;\n", b)
		}
		blocks.WriteString("        keepalive 64;\n        keepalive_requests 1000000;\n    }\n")
		name := ""
		if s.Name != "" {
			name = "\n        server_name " + s.Name + ";"
		}
		if s.MaxBody != "" {
			name += "\n        client_max_body_size " + s.MaxBody + ";"
		}
		fmt.Fprintf(&blocks, `    server {
        listen %s;%s
        location / {
            proxy_pass http://app%d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # potluck-front adds these by default; without them NGINX would
            # build and the backends parse four headers fewer per request.
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }
    }
`, s.Listen, name, i)
	}
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
%[2]s}
`, dir, blocks.String())
}
