package table

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PaperColumn is one column of the paper's Table 1 (seconds, mean of 15
// runs; Fronts in GCP, Backs on home PCs in Tyumen).
type PaperColumn struct {
	Name string `json:"name"`
	// Seconds by method and request count.
	Seconds map[string]map[int]float64 `json:"seconds"`
}

// Paper returns the published columns of Table 1 (Vorobyov et al., 2021).
func Paper() []PaperColumn {
	col := func(name string, g1, p1, g10, p10, g25, p25 float64) PaperColumn {
		return PaperColumn{Name: name, Seconds: map[string]map[int]float64{
			"GET":  {1: g1, 10: g10, 25: g25},
			"POST": {1: p1, 10: p10, 25: p25},
		}}
	}
	return []PaperColumn{
		col("paper: GKE (3 nodes)", 0.18705, 0.21208, 0.94552, 1.06918, 4.67620, 5.30200),
		col("paper: Front in europe-west3", 0.35105, 0.40122, 1.75472, 1.95673, 8.77647, 10.03058),
		col("paper: Front in asia-east1", 0.65478, 0.65627, 3.26728, 3.27777, 16.36959, 16.40684),
	}
}

// Options shape the written table.
type Options struct {
	// Paper adds the paper's published columns.
	Paper bool
}

func rowName(method string, n int) string {
	if n == 1 {
		return method + ", 1 request"
	}
	return fmt.Sprintf("%s, %d requests", method, n)
}

func seconds(v float64) string { return strconv.FormatFloat(v, 'f', 5, 64) }

// WriteMarkdown writes the table in the paper's layout: a block of rows per
// method (GET, then POST), one row per count, one column per target (then
// the paper's); a cell is the mean seconds per run ± the standard deviation
// [min, max] (the paper published means only).
func WriteMarkdown(w io.Writer, r *Result, o Options) error {
	var b strings.Builder
	cols := []string{"measurement"}
	for _, t := range r.Targets {
		cols = append(cols, t.Name)
	}
	var paper []PaperColumn
	if o.Paper {
		paper = Paper()
		for _, p := range paper {
			cols = append(cols, p.Name)
		}
	}
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, m := range r.Methods {
		for _, n := range r.Counts {
			row := []string{rowName(m, n)}
			for _, t := range r.Targets {
				if c, ok := r.Cell(t.Name, m, n); ok {
					row = append(row, fmt.Sprintf("%s ± %s [%s, %s]", seconds(c.Mean), seconds(c.Stddev), seconds(c.Min), seconds(c.Max)))
				} else {
					row = append(row, "")
				}
			}
			for _, p := range paper {
				if v, ok := p.Seconds[m][n]; ok {
					row = append(row, seconds(v))
				} else {
					row = append(row, "")
				}
			}
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	fmt.Fprintf(&b, "\nSeconds per run of N sequential requests: mean ± standard deviation [min, max] of %d runs", r.Runs)
	if o.Paper {
		b.WriteString(" (the paper's columns: means of 15 runs)")
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"target", "method", "requests", "runs", "mean_s", "stddev_s", "min_s", "max_s"}

// WriteCSV writes one row per cell (long format); the paper's columns, if
// asked for, are rows whose target starts with "paper:" and whose runs,
// stddev, min and max are empty.
func WriteCSV(w io.Writer, r *Result, o Options) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, c := range r.Cells {
		if err := cw.Write([]string{c.Target, c.Method, strconv.Itoa(c.Requests), strconv.Itoa(c.Runs),
			seconds(c.Mean), seconds(c.Stddev), seconds(c.Min), seconds(c.Max)}); err != nil {
			return err
		}
	}
	if o.Paper {
		for _, p := range Paper() {
			for _, n := range r.Counts {
				for _, m := range r.Methods {
					if v, ok := p.Seconds[m][n]; ok {
						if err := cw.Write([]string{p.Name, m, strconv.Itoa(n), "", seconds(v), "", "", ""}); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// JSONReport is what WriteJSON writes.
type JSONReport struct {
	*Result
	Paper []PaperColumn `json:"paper,omitempty"`
}

// WriteJSON writes the result (and the paper's columns, if asked for).
func WriteJSON(w io.Writer, r *Result, o Options) error {
	rep := JSONReport{Result: r}
	if o.Paper {
		rep.Paper = Paper()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// Write writes r in format "markdown", "csv" or "json".
func Write(w io.Writer, format string, r *Result, o Options) error {
	switch format {
	case "markdown", "md", "":
		return WriteMarkdown(w, r, o)
	case "csv":
		return WriteCSV(w, r, o)
	case "json":
		return WriteJSON(w, r, o)
	}
	return fmt.Errorf("table: format %q: use markdown, csv or json", format)
}
