package main

import (
	"fmt"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// profileFront takes a CPU profile of potluck-front while wrk loads it.
func profileFront(s settings, frontAddr, adminAddr string) error {
	done := make(chan error, 1)
	go func() { _, err := runWrk(s, frontAddr, 12*time.Second); done <- err }()
	time.Sleep(time.Second)
	client := &fasthttp.Client{ReadTimeout: 30 * time.Second}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + adminAddr + "/debug/pprof/profile?seconds=10")
	if err := client.Do(req, resp); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := os.WriteFile(s.profile, resp.Body(), 0o600); err != nil {
		return err
	}
	fmt.Println("CPU profile written to", s.profile, "- inspect with: go tool pprof -top", s.frontBin, s.profile)
	return <-done
}
