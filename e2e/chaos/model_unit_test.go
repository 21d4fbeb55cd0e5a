package chaos

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// The model must accept what a linearizable API may answer and refuse what
// it may not; otherwise the chaos test proves nothing.
func TestAppModel(t *testing.T) {
	op := func(client int, call, ret int64, in appInput, out appOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	create := func(name, image string) appInput { return appInput{Kind: opCreate, Name: name, Image: image} }
	get := appInput{Kind: opGet, Name: "a"}
	del := appInput{Kind: opDelete, Name: "a"}
	const end = 1000
	tests := []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{"create then read", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(1, 20, 30, get, appOutput{Status: 200, Image: "i1"}),
		}, true},
		{"a read after an acknowledged delete sees the app (stale read)", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(0, 20, 30, del, appOutput{Status: 204}),
			op(1, 40, 50, get, appOutput{Status: 200, Image: "i1"}),
		}, false},
		{"a read concurrent with the delete may see either", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(0, 20, 30, del, appOutput{Status: 204}),
			op(1, 25, 50, get, appOutput{Status: 200, Image: "i1"}),
		}, true},
		{"two creates both acknowledged", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(1, 20, 30, create("a", "i2"), appOutput{Status: 201}),
		}, false},
		{"an unknown create may have been applied", []porcupine.Operation{
			op(0, 0, end, create("a", "i1"), appOutput{Unknown: true}),
			op(1, 20, 30, get, appOutput{Status: 200, Image: "i1"}),
			op(1, 40, 50, create("a", "i2"), appOutput{Status: 200}),
			op(1, 60, 70, get, appOutput{Status: 200, Image: "i2"}),
		}, true},
		{"a create on a taken name makes a new version", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(1, 20, 30, create("a", "i2"), appOutput{Status: 200}),
			op(1, 40, 50, get, appOutput{Status: 200, Image: "i1"}),
		}, false},
		{"an unknown create may have been lost", []porcupine.Operation{
			op(0, 0, end, create("a", "i1"), appOutput{Unknown: true}),
			op(1, 20, 30, get, appOutput{Status: 404}),
			op(1, 40, 50, create("a", "i2"), appOutput{Status: 201}),
			op(1, 60, 70, get, appOutput{Status: 200, Image: "i2"}),
		}, true},
		{"a value nobody wrote", []porcupine.Operation{
			op(0, 0, end, create("a", "i1"), appOutput{Unknown: true}),
			op(1, 20, 30, get, appOutput{Status: 200, Image: "i9"}),
		}, false},
		{"an unknown delete may have been applied", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(1, 20, end, del, appOutput{Unknown: true}),
			op(0, 30, 40, get, appOutput{Status: 404}),
		}, true},
		{"names are independent", []porcupine.Operation{
			op(0, 0, 10, create("a", "i1"), appOutput{Status: 201}),
			op(1, 20, 30, create("b", "i2"), appOutput{Status: 201}),
			op(1, 40, 50, appInput{Kind: opGet, Name: "b"}, appOutput{Status: 200, Image: "i2"}),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(appModel, tt.history, 10*time.Second)
			want := porcupine.Illegal
			if tt.ok {
				want = porcupine.Ok
			}
			require.Equal(t, want, res)
		})
	}
}

// On a violation the test prints which answer fits nowhere.
func TestExplainNamesTheStaleRead(t *testing.T) {
	history := []porcupine.Operation{
		{ClientId: 0, Input: appInput{Kind: opCreate, Name: "a", Image: "i1"}, Call: 0, Output: appOutput{Status: 201}, Return: 10},
		{ClientId: 0, Input: appInput{Kind: opDelete, Name: "a"}, Call: 20, Output: appOutput{Status: 204}, Return: 30},
		{ClientId: 1, Input: appInput{Kind: opGet, Name: "a"}, Call: 40, Output: appOutput{Status: 200, Image: "i1"}, Return: 50,
			Metadata: opMeta{Attempts: []string{"core3:200"}}},
	}
	res, info := porcupine.CheckOperationsVerbose(appModel, history, 10*time.Second)
	require.Equal(t, porcupine.Illegal, res)
	got := explain(history, info, []fault{{Kind: "pause", Node: "core3", At: 35, Healed: 45}})
	require.Contains(t, got, "a: 2 of 3 operations linearize")
	require.Contains(t, got, "get(a) -> i1")
	require.Contains(t, got, "[core3:200]  answering node: pause")
}
