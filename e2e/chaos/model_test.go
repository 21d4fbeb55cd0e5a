package chaos

import (
	"fmt"
	"net/http"

	"github.com/anishathalye/porcupine"
)

// The model: every app name is an independent register holding the image of
// the app of that name, or "" when there is none. Creates carry a unique
// image, so a read tells which create it saw.

type opKind string

const (
	opGet    opKind = "get"
	opCreate opKind = "create"
	opDelete opKind = "delete"
)

// appInput is what a client asked.
type appInput struct {
	Kind  opKind
	Name  string
	Image string // for creates
}

// appOutput is what it got: Status is the HTTP status of the definite
// answer; Unknown means no definite answer came (timeout, reset, 5xx until
// the client gave up), so the write may or may not have been applied.
type appOutput struct {
	Status  int
	Image   string // for a 200 read
	Unknown bool
}

// opMeta is shown in the visualization next to an operation.
type opMeta struct {
	Attempts []string // node and status (or error) of every attempt
}

// appModel is the /v1/apps API as a set of registers keyed by name.
var appModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byName := map[string][]porcupine.Operation{}
		var names []string
		for _, op := range history {
			n := op.Input.(appInput).Name
			if _, ok := byName[n]; !ok {
				names = append(names, n)
			}
			byName[n] = append(byName[n], op)
		}
		var out [][]porcupine.Operation
		for _, n := range names {
			out = append(out, byName[n])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(appInput), output.(appOutput)
		switch in.Kind {
		case opGet:
			if st == "" {
				return out.Status == http.StatusNotFound, st
			}
			return out.Status == http.StatusOK && out.Image == st, st
		case opCreate:
			// POST /v1/apps creates the app (201) or, for a name taken,
			// adds a version that becomes its image (200): either way the
			// name now holds this image. A create whose outcome is unknown
			// was applied here, or never (it linearizes after the rest).
			if out.Unknown {
				return true, in.Image
			}
			if st == "" {
				return out.Status == http.StatusCreated, in.Image
			}
			return out.Status == http.StatusOK, in.Image
		case opDelete:
			if out.Unknown {
				return true, ""
			}
			if st == "" {
				return out.Status == http.StatusNotFound, st
			}
			return out.Status == http.StatusNoContent, ""
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(appInput), output.(appOutput)
		res := fmt.Sprint(out.Status)
		switch {
		case out.Unknown:
			res = "unknown"
		case out.Status == http.StatusOK:
			res = out.Image
		}
		switch in.Kind {
		case opCreate:
			return fmt.Sprintf("create(%s, %s) -> %s", in.Name, in.Image, res)
		default:
			return fmt.Sprintf("%s(%s) -> %s", in.Kind, in.Name, res)
		}
	},
	DescribeState: func(state any) string {
		if state.(string) == "" {
			return "(none)"
		}
		return state.(string)
	},
	DescribeOperationMetadata: func(info any) string {
		m, ok := info.(opMeta)
		if !ok {
			return ""
		}
		return fmt.Sprint(m.Attempts)
	},
}
