package apiclient_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/core/api"
	"potluck/internal/version"
)

// TestTypesReadWhatTheCoreWrites: the client's types mirror core/api's
// views instead of importing them (so the CLI carries no core). JSON
// ignores a field the other side does not have, so a field renamed on one
// side would silently read as zero; this keeps every field the client reads
// among those the core writes, nested types included.
func TestTypesReadWhatTheCoreWrites(t *testing.T) {
	for _, tc := range []struct {
		client, core any
	}{
		{apiclient.Status{}, api.StatusView{}},
		{apiclient.Token{}, api.TokenView{}},
		{apiclient.Rotation{}, api.RotationView{}},
		{apiclient.Host{}, api.HostView{}},
		{apiclient.Registration{}, api.RegistrationView{}},
		{apiclient.App{}, api.AppView{}},
		{apiclient.Installation{}, api.InstallationView{}},
		{apiclient.ListedRelease{}, api.ReleaseView{}},
		{apiclient.Instance{}, api.InstanceView{}},
		{apiclient.AutoscaleStatus{}, api.AutoscaleView{}},
		{apiclient.Metrics{}, api.MetricsView{}},
	} {
		client, core := reflect.TypeOf(tc.client), reflect.TypeOf(tc.core)
		t.Run(client.Name(), func(t *testing.T) {
			for _, missing := range missingFields(client, core, client.Name()) {
				t.Errorf("%s is not in the core's %s", missing, core.Name())
			}
		})
	}
}

// TestHeadersAreTheCores: the client's header names are the core's.
func TestHeadersAreTheCores(t *testing.T) {
	for _, tc := range []struct{ client, core string }{
		{apiclient.HeaderIndex, api.HeaderIndex},
		{apiclient.HeaderNextCursor, api.HeaderNextCursor},
		{apiclient.HeaderUISession, api.HeaderUISession},
	} {
		require.Equal(t, tc.core, tc.client)
	}
}

// missingFields lists the JSON fields of client (as path.field) that core
// does not have, descending into fields that are structs on both sides.
func missingFields(client, core reflect.Type, path string) []string {
	client, core = elem(client), elem(core)
	if client.Kind() != reflect.Struct || core.Kind() != reflect.Struct || client == core ||
		client == reflect.TypeFor[time.Time]() || client == reflect.TypeFor[version.Info]() {
		return nil
	}
	have := jsonFields(core)
	var missing []string
	for name, ct := range jsonFields(client) {
		st, ok := have[name]
		if !ok {
			missing = append(missing, path+"."+name)
			continue
		}
		missing = append(missing, missingFields(ct, st, path+"."+name)...)
	}
	return missing
}

// elem is t without pointers, slices and maps around it.
func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return t
}

// jsonFields are the JSON object keys encoding/json gives a struct, with
// the fields of untagged embedded structs promoted.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(elem(f.Type)) {
				if _, shadowed := out[k]; !shadowed {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
