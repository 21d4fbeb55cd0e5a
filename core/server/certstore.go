package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"potluck/core/agentapi"
	"potluck/core/api"
	"potluck/core/certseal"
	"potluck/core/fsm"
	"potluck/core/pki"
	"potluck/internal/jsonhttp"
)

// openSealer derives the certificate store's sealing key from the cluster
// CA: every core node holds the CA, so every one opens what another sealed.
func openSealer(ca *pki.CA) (*certseal.Sealer, error) {
	key, err := ca.DeriveKey(certseal.Label)
	if err != nil {
		return nil, err
	}
	return certseal.New(key)
}

// certStore is the agent API's certificate store on this node.
func (s *Server) certStore() *agentapi.CertStore {
	if s.sealer == nil {
		return nil
	}
	return &agentapi.CertStore{Seal: s.sealer.Seal, Open: s.sealer.Open, Write: s.certWrite}
}

// sealCert is api.Config.SealCert.
func (s *Server) sealCert(key string, value []byte) ([]byte, error) {
	if s.sealer == nil {
		return nil, fmt.Errorf("no cluster CA to seal with")
	}
	return s.sealer.Seal(key, value)
}

// certWrite commits a certificate store write at the leader (through our
// API, which forwards it, on a follower) and returns once this node's state
// holds it, so the Front that wrote reads its write back from this node.
func (s *Server) certWrite(ctx context.Context, req api.CertStoreRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if s.Node.IsLeader() {
		res, err := s.Node.Decide(ctx, "", func(_ *fsm.State, now time.Time) (*fsm.Command, error) {
			return api.CertStoreCommand(req, now)
		})
		if err != nil {
			return err
		}
		return res.Err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	index, err := s.postCertStore(ctx, body, s.nodeToken)
	if jsonhttp.StatusOf(err) == http.StatusUnauthorized {
		index, err = s.postCertStore(ctx, body, s.cfg.OperatorToken)
	}
	if err != nil {
		return err
	}
	for cur := s.Node.FSM.State().Index; cur < index && ctx.Err() == nil; cur = s.Node.FSM.State().Index {
		s.Node.FSM.Wait(ctx, cur)
	}
	return ctx.Err()
}

// postCertStore posts to /v1/internal/certstore and returns the index the
// write was committed at.
func (s *Server) postCertStore(ctx context.Context, body []byte, token string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/internal/certstore", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("certificate store: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return 0, jsonhttp.ReadError(resp)
	}
	index, err := strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("certificate store: the answer's %s: %w", api.HeaderIndex, err)
	}
	return index, nil
}
