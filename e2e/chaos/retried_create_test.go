package chaos

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRetriedCreateAnswersItsOwnOutcome pins the cause of an anomaly
// TestLinearizable reported once apps had versions (docs/api.md,
// Consistency): a create retried with the same X-Request-Id across a leader
// kill answered 404, then 200, as if applied twice. It was applied once; the
// answers were read off the app's state at the time of the retry (404 when
// deleted since, 200 when its version was above 1) instead of the record
// of what the request did. The FSM's request record now keeps the version
// the write made (fsm.AppVersionRef) and core/api's writeApp answers from it.
//
// Each retry must get the answer of the request it repeats: 201, the app
// created.
func TestRetriedCreateAnswersItsOwnOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster of processes")
	}
	c := startCluster(t, "potluck-retry-", nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	all := newAPIClient(c.nodes, 2*time.Second, 15*time.Second)
	write := func(in appInput, requestID string) int {
		out, meta := all.do(ctx, rng, in, requestID)
		require.False(t, out.Unknown, "%s %s (%s) got no definite answer: %v", in.Kind, in.Name, requestID, meta.Attempts)
		return out.Status
	}
	// retry sends the request once more with its id, as a client that lost
	// the first answer does, and returns the status it gets.
	retry := func(in appInput, requestID string) int {
		for _, n := range c.nodes {
			out, definite, note := all.attemptOn(ctx, n, in, requestID)
			if definite {
				return out.Status
			}
			if note == "404" {
				return http.StatusNotFound
			}
		}
		t.Fatalf("no node answered the retry of %s", requestID)
		return 0
	}

	const name = "retry-probe"
	first := appInput{Kind: opCreate, Name: name, Image: "chaos.example/retry:1"}
	require.Equal(t, http.StatusCreated, write(first, "retry-create-1"))
	require.Equal(t, http.StatusCreated, retry(first, "retry-create-1"), "a retry right after the create")

	require.Equal(t, http.StatusNoContent, write(appInput{Kind: opDelete, Name: name}, "retry-delete"))
	afterDelete := retry(first, "retry-create-1")

	require.Equal(t, http.StatusCreated, write(appInput{Kind: opCreate, Name: name, Image: "chaos.example/retry:2"}, "retry-create-2"))
	require.Equal(t, http.StatusOK, write(appInput{Kind: opCreate, Name: name, Image: "chaos.example/retry:3"}, "retry-create-3"))
	afterNewVersions := retry(first, "retry-create-1")

	t.Logf("the retry of the first create answered %d after the delete, %d after two more creates", afterDelete, afterNewVersions)
	require.Equal(t, http.StatusCreated, afterDelete, "the retry of a create applied before a delete")
	require.Equal(t, http.StatusCreated, afterNewVersions, "the retry of a create applied before a delete and two creates")
}
