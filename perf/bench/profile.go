package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/fastfsd/fastfsd/perf/flame"
)

// FlameGraphs runs every job once on subject s (a fastfsd started with
// --pprof pprofAddr) while fetching a CPU profile of the daemon for the
// job's duration, and writes DIR/<job>.pprof, DIR/<job>.svg and
// DIR/README.md, an index saying which workload each graph is, with the
// commit and machine.
func FlameGraphs(ctx context.Context, s Subject, command string, pprofAddr string, jobs []Job, dir string, log io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mdir, stop, err := s.Start(ctx)
	if err != nil {
		return fmt.Errorf("flamegraphs: start %s: %w", s.Name, err)
	}
	defer stop()
	var index strings.Builder
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	kernel := "linux"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	fmt.Fprintf(&index, "# fastfsd flame graphs\n\nCPU profiles of `%s` (pprof, 100 Hz) while one workload of the\nbenchmark suite runs through the mount. Open an SVG in a browser and hover a\nbox for its function and share.\n\n", command)
	fmt.Fprintf(&index, "- commit: %s\n- machine: %d CPUs, %s, %s, %s\n- made by: `make flamegraphs` (perf/bench FlameGraphs)\n\n", strings.TrimSpace(string(commit)), runtime.NumCPU(), cpu, kernel, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&index, "| workload | graph | figure | top functions (self) |\n|---|---|---|---|\n")
	for _, job := range jobs {
		secs := 4
		prof := filepath.Join(dir, job.Name+".pprof")
		got := make(chan error, 1)
		go func() {
			got <- fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), prof)
		}()
		var v float64
		var err error
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		for n := 0; time.Now().Before(deadline) || n == 0; n++ { // keep the daemon busy for the whole profile
			if job.Meta != nil {
				v, err = job.Meta(ctx, mdir)
			} else {
				v, err = runFIO(ctx, job, mdir)
			}
			if err != nil {
				break
			}
		}
		removeFIOFiles(mdir)
		if perr := <-got; perr != nil {
			return fmt.Errorf("flamegraphs: %s: profile: %w", job.Name, perr)
		}
		if err != nil {
			return fmt.Errorf("flamegraphs: %s: %w", job.Name, err)
		}
		root, err := flame.ReadFile(prof, "cpu")
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, job.Name+".svg"))
		if err != nil {
			return err
		}
		err = flame.WriteSVG(f, root, fmt.Sprintf("fastfsd CPU: %s (%s)", job.Name, strings.TrimSpace(string(commit))), 1400)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&index, "| %s | [%s.svg](%s.svg) | %s %s | %s |\n", job.Name, job.Name, job.Name, fmtFig(v), job.Unit, strings.Join(flame.Top(root, 4), ", "))
		if log != nil {
			fmt.Fprintf(log, "flamegraphs: %s done (%s %s)\n", job.Name, fmtFig(v), job.Unit)
		}
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), []byte(index.String()), 0o644)
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
