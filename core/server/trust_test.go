package server

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

// TestSlowBodiesOnEveryNode: a POST announcing Content-Length: 10 that
// never sends the body stayed open for minutes on every node; followers
// streamed it to the leader before anyone checked the token. Now every
// node answers at once without a valid token, and within the body timeout
// with one.
func TestSlowBodiesOnEveryNode(t *testing.T) {
	c := newTestCluster(t, 3, func(_ int, cfg *Config) { cfg.BodyIdleTimeout = 500 * time.Millisecond })
	send := func(node int, head string, within time.Duration) string {
		u, err := url.Parse(c.nodes[node].URL())
		require.NoError(t, err)
		conn, err := net.Dial("tcp", u.Host)
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write([]byte(head))
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(within)))
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err, "node %d did not answer within %s", node, within)
		return line
	}
	for _, node := range []int{c.leader(), c.follower()} {
		require.Contains(t, send(node, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", time.Second), " 401 ")
		require.Contains(t, send(node, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ffffffff.nope\r\nContent-Length: 10\r\n\r\n", time.Second), " 401 ")
		require.Contains(t, send(node, "POST /v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nContent-Length: 99999999\r\n\r\n", time.Second), " 413 ")
		line := send(node, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nContent-Length: 10\r\n\r\n", 10*time.Second)
		require.Regexp(t, ` (400|502) `, line, "cut after the body timeout")
		require.Contains(t, send(node, "POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n", 10*time.Second), "HTTP/1.1 ")
	}
}

// TestNodesSurviveOperatorRotation: core nodes called each other with the
// operator token, so rotating it would have cut blob replication and
// forwarded heartbeats. They use the node token derived from the cluster
// CA instead.
func TestNodesSurviveOperatorRotation(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	r := c.call(c.follower(), "POST", "/v1/tokens/operator/rotate", map[string]string{"grace": "0s"})
	require.Equal(t, http.StatusOK, r.code, r.String())
	var rot struct{ Token string }
	r.json(t, &rot)
	require.NotEmpty(t, rot.Token)
	require.Equal(t, http.StatusUnauthorized, c.call(c.leader(), "GET", "/v1/hosts", nil).code, "no grace: the old token stops at once")

	tarball := blobstest.DockerSaveTar(t, "after:1", 20<<10)
	f := c.follower()
	r = call(t, "POST", c.nodes[f].URL()+"/v1/apps/after/tarball?container_port=8080", rot.Token, tarball, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct{ Digest string }
	r.json(t, &app)
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if !n.Blobs.Has(app.Digest) {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond, "blob replication between core nodes needs no operator token")
}
