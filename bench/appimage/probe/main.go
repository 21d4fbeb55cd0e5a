// Command probe is a test app that tries, from inside its container, what an
// attacker's app would: GET /dial?addr=HOST:PORT opens a TCP connection,
// /write?path=P writes a file, /spawn?n=N starts processes, /raw opens a raw
// socket. Each answers 200 "ok ..." when the attempt worked and 200 "denied
// ..." with the error when it did not, so tests of isolation and hardening
// observe behaviour, not configuration. GET / names the instance.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(time.Minute)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "probe %s\n", os.Getenv("POTLUCK_INSTANCE"))
	})
	mux.HandleFunc("GET /dial", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), 2*time.Second)
		if err != nil {
			fmt.Fprintf(w, "denied %v\n", err)
			return
		}
		c.Close()
		fmt.Fprintln(w, "ok connected")
	})
	mux.HandleFunc("GET /write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte("x"), 0o644); err != nil {
			fmt.Fprintf(w, "denied %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok written")
	})
	mux.HandleFunc("GET /spawn", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var started []*exec.Cmd
		defer func() {
			for _, c := range started {
				c.Process.Kill()
				c.Wait()
			}
		}()
		self, _ := os.Executable()
		for i := range n {
			c := exec.Command(self, "sleep")
			if err := c.Start(); err != nil {
				fmt.Fprintf(w, "denied after %d: %v\n", i, err)
				return
			}
			started = append(started, c)
		}
		fmt.Fprintf(w, "ok started %d\n", n)
	})
	mux.HandleFunc("GET /raw", func(w http.ResponseWriter, r *http.Request) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
		if err != nil {
			fmt.Fprintf(w, "denied %v\n", err)
			return
		}
		syscall.Close(fd)
		fmt.Fprintln(w, "ok raw socket")
	})
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}
