package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// writeSnapshot writes st as Persist always has (encoding/json of the state
// and a newline, byte for byte: the golden test pins it) without holding
// the whole encoding in memory: the two maps that grow with the fleet,
// hosts and instances, are written entry by entry, in key order as
// encoding/json writes maps. At 100,000 instances that saves a buffer of
// tens of MB (and its copies while it grows) on every snapshot.
func writeSnapshot(w io.Writer, st *State) error {
	shell := *st
	shell.Hosts, shell.Instances = nil, nil
	head, err := json.Marshal(&shell)
	if err != nil {
		return err
	}
	// Split the shell where the two maps go. Only the top level can hold
	// these exact bytes (no nested field of a state is named so with a
	// null value); if that ever changes, fall back to one buffer.
	hostsAt, instancesAt := bytes.Index(head, []byte(`,"hosts":null,`)), bytes.Index(head, []byte(`,"instances":null,`))
	if hostsAt < 0 || instancesAt < hostsAt || bytes.Count(head, []byte(`"hosts":null`)) != 1 || bytes.Count(head, []byte(`"instances":null`)) != 1 {
		return json.NewEncoder(w).Encode(st)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	parts := []struct {
		raw   []byte
		write func() error
	}{
		{head[:hostsAt+len(`,"hosts":`)], func() error { return writeMap(bw, st.Hosts) }},
		{head[hostsAt+len(`,"hosts":null`) : instancesAt+len(`,"instances":`)], func() error { return writeMap(bw, st.Instances) }},
		{head[instancesAt+len(`,"instances":null`):], nil},
	}
	for _, p := range parts {
		if _, err := bw.Write(p.raw); err != nil {
			return err
		}
		if p.write != nil {
			if err := p.write(); err != nil {
				return err
			}
		}
	}
	if err := bw.WriteByte('\n'); err != nil {
		return err
	}
	return bw.Flush()
}

// writeMap writes m as encoding/json does: null when nil, else its entries
// sorted by key.
func writeMap[V any](w *bufio.Writer, m map[string]V) error {
	if m == nil {
		_, err := w.WriteString("null")
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := w.WriteByte('{'); err != nil {
		return err
	}
	for i, k := range keys {
		if i > 0 {
			if err := w.WriteByte(','); err != nil {
				return err
			}
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return err
		}
		vb, err := json.Marshal(m[k])
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		w.Write(kb)
		w.WriteByte(':')
		if _, err := w.Write(vb); err != nil {
			return err
		}
	}
	return w.WriteByte('}')
}
