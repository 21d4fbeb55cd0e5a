package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The two proxies get equivalent configs: the same upstream servers with
// max_fails=1 fail_timeout=20s, keep-alive, the client's Host passed on,
// X-Forwarded-* and X-Real-IP added, no access log.

func writeNginxConf(dir, listen string, backends []string) error {
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "        server %s max_fails=1 fail_timeout=20s;\n", b)
	}
	conf := fmt.Sprintf(`daemon off;
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
    upstream app {
%[2]s        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://app;
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
}
`, dir, servers.String(), listen)
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600)
}

func writeFrontConf(dir, name, listen, admin string, backends []string, extra string) error {
	conf := fmt.Sprintf("listen: [%q]\nadmin: %q\n%sroutes:\n  - default: true\n    backends: [%s]\n",
		listen, admin, extra, strings.Join(backends, ", "))
	return os.WriteFile(filepath.Join(dir, name), []byte(conf), 0o600)
}
