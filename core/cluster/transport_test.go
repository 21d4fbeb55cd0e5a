package cluster

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/pki"
)

func clusterTLS(t *testing.T, ca *pki.CA, id string) *TLS {
	cert, err := ca.IssueNode(id)
	require.NoError(t, err)
	server, client := ca.MutualTLS(cert)
	return &TLS{Server: server, Client: client}
}

// openLeader starts a one-node group over mutual TLS and waits for it to lead.
func openLeader(t *testing.T, ca *pki.CA) *Node {
	n, err := Open(Config{ID: "core1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", TLS: clusterTLS(t, ca, "core1"),
		Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	require.Eventually(t, n.IsLeader, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, n.CatchUp(), "the leader's first entries are in before the test counts them")
	return n
}

// rogueAppend sends one well-formed AppendEntries at a higher term, as the
// attacker of issue 10 did: an entry right after the node's last one, and a
// commit index that includes it.
func rogueAppend(trans *raft.NetworkTransport, n *Node) (*raft.AppendEntriesResponse, error) {
	last := n.Raft.LastIndex()
	term, _ := strconv.ParseUint(n.Raft.Stats()["term"], 10, 64)
	lastTerm, _ := strconv.ParseUint(n.Raft.Stats()["last_log_term"], 10, 64)
	cmd := []byte(`{"type":"set_operator_token","operator_token_hash":"attacker"}`)
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("attacker"), Addr: []byte(trans.LocalAddr())},
		Term:      term + 1, PrevLogEntry: last, PrevLogTerm: lastTerm,
		Entries:           []*raft.Log{{Index: last + 1, Term: term + 1, Type: raft.LogCommand, Data: cmd}},
		LeaderCommitIndex: last + 1,
	}
	var resp raft.AppendEntriesResponse
	err := trans.AppendEntries("core1", raft.ServerAddress(n.RaftAddr()), req, &resp)
	return &resp, err
}

// TestRogueAppendWorksOnPlainTCP is the control: without TLS, the attack of
// issue 10 is accepted, so the refusals below are the transport's doing.
func TestRogueAppendWorksOnPlainTCP(t *testing.T) {
	n, err := Open(Config{ID: "core1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	defer n.Close()
	require.Eventually(t, n.IsLeader, 10*time.Second, 20*time.Millisecond)
	trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	require.NoError(t, err)
	defer trans.Close()
	resp, err := rogueAppend(trans, n)
	require.NoError(t, err, "a plain raft port answers anyone")
	require.True(t, resp.Success, "and takes the injected entry")
}

func TestRaftRefusesPeersWithoutClusterCertificate(t *testing.T) {
	ca, err := pki.NewCA("test")
	require.NoError(t, err)
	n := openLeader(t, ca)
	before := n.Raft.LastIndex()
	term := n.Raft.Stats()["term"]

	logger := hclog.NewNullLogger()
	t.Run("plain TCP, no credentials", func(t *testing.T) {
		trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, logger)
		require.NoError(t, err)
		defer trans.Close()
		_, err = rogueAppend(trans, n)
		require.Error(t, err)
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other, err := pki.NewCA("other")
		require.NoError(t, err)
		stream, err := newTLSStream("127.0.0.1:0", nil, *clusterTLS(t, other, "core1"), nil)
		require.NoError(t, err)
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 2 * time.Second, Logger: logger})
		defer trans.Close()
		_, err = rogueAppend(trans, n)
		require.Error(t, err)
	})
	t.Run("TLS without a client certificate", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", n.RaftAddr(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err == nil {
			// TLS 1.3 reports a missing client certificate at the first read.
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		require.Error(t, err)
	})
	t.Run("a member's certificate is accepted", func(t *testing.T) {
		stream, err := newTLSStream("127.0.0.1:0", nil, *clusterTLS(t, ca, "core2"), nil)
		require.NoError(t, err)
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 2 * time.Second, Logger: logger})
		defer trans.Close()
		var resp raft.RequestVoteResponse
		err = trans.RequestVote("core1", raft.ServerAddress(n.RaftAddr()), &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("core2"), Addr: []byte(trans.LocalAddr())}, Term: 0}, &resp)
		require.NoError(t, err, "a certified member gets an answer (here: a refused vote for an old term)")
		require.False(t, resp.Granted)
	})

	// Nothing the outsiders sent changed the node: it still leads in its term
	// and its log did not grow.
	require.True(t, n.IsLeader())
	require.Equal(t, term, n.Raft.Stats()["term"])
	require.Equal(t, before, n.Raft.LastIndex())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = n.Apply(ctx, &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: "h"})
	require.NoError(t, err, "the group still commits")
}
