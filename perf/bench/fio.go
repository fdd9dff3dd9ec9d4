package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// Job is one workload of the suite.
type Job struct {
	Name string // short, e.g. "randread-4k-1job"
	// Unit of the figure: "MiB/s", "IOPS" or "files/s"; higher is better.
	Unit string
	// FIO arguments (besides --directory, --output-format); nil for a
	// metadata job.
	FIO []string
	// Meta runs a metadata workload in dir and returns its figure.
	Meta func(ctx context.Context, dir string) (float64, error)
}

// Suite is the fixed suite. size is the per-job file size (e.g. "256M"),
// runtime fio's time limit per job (e.g. "5s"), jobs the N of the N-job
// random read.
func Suite(size, runtime string, jobs int, files int) []Job {
	common := []string{"--ioengine=psync", "--invalidate=0", "--group_reporting", "--time_based", "--runtime=" + runtime, "--size=" + size, "--filename_format=fio.$jobnum"}
	j := func(name, unit string, args ...string) Job {
		return Job{Name: name, Unit: unit, FIO: append(append([]string{"--name=" + name}, common...), args...)}
	}
	return []Job{
		// Each name says O_DIRECT ("direct") or through the page cache
		// ("buffered"): with FUSE passthrough a buffered read is the host
		// page cache's speed, without it the daemon's.
		j("seqread-1m-direct", "MiB/s", "--rw=read", "--bs=1M", "--direct=1"),
		j("seqwrite-1m-direct", "MiB/s", "--rw=write", "--bs=1M", "--direct=1"),
		j("randread-4k-1job-direct", "IOPS", "--rw=randread", "--bs=4k", "--numjobs=1", "--direct=1"),
		j("randread-4k-1job-buffered", "IOPS", "--rw=randread", "--bs=4k", "--numjobs=1"),
		j(fmt.Sprintf("randread-4k-%djobs-buffered", jobs), "IOPS", "--rw=randread", "--bs=4k", fmt.Sprintf("--numjobs=%d", jobs)),
		j("randwrite-4k-buffered", "IOPS", "--rw=randwrite", "--bs=4k", "--numjobs=1"),
		{Name: fmt.Sprintf("create-%d", files), Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { return metaCreate(dir, files) }},
		{Name: fmt.Sprintf("stat-%d-cold", files), Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { return metaStat(dir, files, true) }},
		{Name: fmt.Sprintf("stat-%d-warm", files), Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { return metaStat(dir, files, false) }},
		{Name: fmt.Sprintf("unlink-%d", files), Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { return metaUnlink(dir, files) }},
		{Name: "untar", Unit: "files/s", Meta: func(ctx context.Context, dir string) (float64, error) { return untar(ctx, dir) }},
	}
}

// fioResult is the part of fio's JSON output bench reads.
type fioResult struct {
	Jobs []struct {
		Error int `json:"error"`
		Read  struct {
			BwBytes float64 `json:"bw_bytes"`
			IOPS    float64 `json:"iops"`
		} `json:"read"`
		Write struct {
			BwBytes float64 `json:"bw_bytes"`
			IOPS    float64 `json:"iops"`
		} `json:"write"`
	} `json:"jobs"`
}

// runFIO runs job in dir and returns its figure in job.Unit.
func runFIO(ctx context.Context, job Job, dir string) (float64, error) {
	args := append([]string{"--directory=" + dir, "--output-format=json"}, job.FIO...)
	cmd := exec.CommandContext(ctx, "fio", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("fio %s in %s: %w: %s", job.Name, dir, err, strings.TrimSpace(errb.String()))
	}
	return parseFIO(job, out.Bytes())
}

func parseFIO(job Job, out []byte) (float64, error) {
	// fio may print warnings before the JSON document.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var r fioResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("fio %s: parse JSON output: %w", job.Name, err)
	}
	if len(r.Jobs) == 0 {
		return 0, fmt.Errorf("fio %s: no job in the output", job.Name)
	}
	var bw, iops float64
	for _, j := range r.Jobs {
		if j.Error != 0 {
			return 0, fmt.Errorf("fio %s: job error %d", job.Name, j.Error)
		}
		bw += j.Read.BwBytes + j.Write.BwBytes
		iops += j.Read.IOPS + j.Write.IOPS
	}
	if job.Unit == "MiB/s" {
		return bw / (1 << 20), nil
	}
	return iops, nil
}
