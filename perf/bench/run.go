package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Subject is one thing measured: a directory, and how to set it up and tear
// it down (mount a FUSE daemon, start a VM share, …).
type Subject struct {
	Name string
	// Start prepares the subject and returns the directory to run the
	// workloads in, and a stop function. It is called once per Run.
	Start func(ctx context.Context) (dir string, stop func() error, err error)
	// MetaOnly: the subject keeps no file data (fastfs-nullfuse), so only
	// the metadata jobs run on it; its fio rows say so.
	MetaOnly bool
}

// Config is one benchmark run.
type Config struct {
	Subjects []Subject // Subjects[0] is the baseline the ratios are to
	Jobs     []Job
	Rounds   int       // alternations per job (≥ 1; medians over them)
	Log      io.Writer // progress lines; nil for none
}

// Result is what a Run measured.
type Result struct {
	Date     time.Time `json:"date"`
	Host     string    `json:"host"`
	Baseline string    `json:"baseline"`
	Subjects []string  `json:"subjects"`
	Rows     []Row     `json:"rows"`
}

// Row is one job's figures.
type Row struct {
	Job  string `json:"job"`
	Unit string `json:"unit"`
	// Samples[subject] are the figures of every round, in order.
	Samples map[string][]float64 `json:"samples"`
	Median  map[string]float64   `json:"median"`
	// Ratio[subject] = Median[subject] / Median[baseline].
	Ratio map[string]float64 `json:"ratio"`
	// Err[subject] says why a subject has no figure.
	Err map[string]string `json:"error,omitempty"`
}

// Run starts every subject, then for each job alternates the subjects
// Rounds times (A B C A B C …), and stops the subjects.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("bench: no subjects")
	}
	rounds := max(cfg.Rounds, 1)
	host, _ := os.Hostname()
	res := &Result{Date: time.Now().UTC(), Host: host, Baseline: cfg.Subjects[0].Name}
	dirs := map[string]string{}
	startErr := map[string]string{}
	for _, s := range cfg.Subjects {
		logf("bench: starting %s", s.Name)
		dir, stop, err := s.Start(ctx)
		if err != nil {
			// A subject that cannot start gets an error in every row; the
			// others are still measured.
			logf("bench: start %s: %v", s.Name, err)
			startErr[s.Name] = "start: " + err.Error()
			res.Subjects = append(res.Subjects, s.Name)
			continue
		}
		defer func(name string) {
			if err := stop(); err != nil {
				logf("bench: stop %s: %v", name, err)
			}
		}(s.Name)
		dirs[s.Name] = dir
		res.Subjects = append(res.Subjects, s.Name)
	}
	for _, job := range cfg.Jobs {
		row := Row{Job: job.Name, Unit: job.Unit, Samples: map[string][]float64{},
			Median: map[string]float64{}, Ratio: map[string]float64{}, Err: map[string]string{}}
		for name, e := range startErr {
			row.Err[name] = e
		}
		for _, s := range cfg.Subjects {
			if s.MetaOnly && job.Meta == nil && row.Err[s.Name] == "" {
				row.Err[s.Name] = notRun
			}
		}
		for r := 0; r < rounds; r++ {
			// Each round starts one subject later than the one before,
			// so no subject always runs first or right after another's
			// load (a cold cache, a timeout that lapses between jobs).
			for _, s := range rotate(cfg.Subjects, r) {
				if row.Err[s.Name] != "" {
					continue
				}
				var v float64
				var err error
				if job.Meta != nil {
					v, err = job.Meta(ctx, dirs[s.Name])
				} else {
					v, err = runFIO(ctx, job, dirs[s.Name])
				}
				if err != nil {
					row.Err[s.Name] = err.Error()
					logf("bench: %s on %s: %v", job.Name, s.Name, err)
					continue
				}
				row.Samples[s.Name] = append(row.Samples[s.Name], v)
				logf("bench: %-20s round %d %-12s %12.1f %s", job.Name, r+1, s.Name, v, job.Unit)
			}
		}
		for _, s := range cfg.Subjects {
			if xs := row.Samples[s.Name]; len(xs) > 0 {
				row.Median[s.Name] = median(xs)
			}
		}
		if base := row.Median[res.Baseline]; base > 0 {
			for name, m := range row.Median {
				row.Ratio[name] = m / base
			}
		}
		if len(row.Err) == 0 {
			row.Err = nil
		}
		res.Rows = append(res.Rows, row)
		// Clean the fio files between jobs so each starts alike.
		for _, d := range dirs {
			removeFIOFiles(d)
		}
	}
	return res, nil
}

func removeFIOFiles(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "fio.") {
			os.Remove(dir + "/" + e.Name())
		}
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// notRun is the Err of a MetaOnly subject's fio rows: no figure, and
// no error either (WriteTable prints "not run").
const notRun = "not run: keeps no file data"

// WriteTable prints medians with each subject's ratio to the baseline.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%-20s %-8s", "job", "unit")
	for _, s := range r.Subjects {
		fmt.Fprintf(w, " %22s", s)
	}
	fmt.Fprintln(w)
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-20s %-8s", row.Job, row.Unit)
		for _, s := range r.Subjects {
			m, ok := row.Median[s]
			switch {
			case !ok && row.Err[s] == notRun:
				fmt.Fprintf(w, " %22s", "not run")
			case !ok:
				fmt.Fprintf(w, " %22s", "error")
			case s == r.Baseline:
				fmt.Fprintf(w, " %22s", fmtFig(m))
			default:
				fmt.Fprintf(w, " %13s (%5.2fx)", fmtFig(m), row.Ratio[s])
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "medians of alternated rounds; (x) = ratio to %s in the same run\n", r.Baseline)
	for _, row := range r.Rows {
		for s, e := range row.Err {
			if e != notRun {
				fmt.Fprintf(w, "error: %s on %s: %s\n", row.Job, s, e)
			}
		}
	}
}

func fmtFig(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteAll writes bench.txt, bench.json and bench.svg into dir and the
// table to w.
func WriteAll(r *Result, dir string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.WriteTable(w)
	for name, write := range map[string]func(io.Writer) error{
		"bench.txt":  func(w io.Writer) error { r.WriteTable(w); return nil },
		"bench.json": r.WriteJSON,
		"bench.svg":  r.WriteSVG,
	} {
		f, err := os.Create(dir + "/" + name)
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "wrote %s/bench.{txt,json,svg}\n", dir)
	return nil
}

// rotate returns subjects started at index r modulo their number.
func rotate(subjects []Subject, r int) []Subject {
	k := r % len(subjects)
	return append(append([]Subject(nil), subjects[k:]...), subjects[:k]...)
}
