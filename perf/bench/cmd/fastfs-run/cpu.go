package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fastfsd/fastfsd/internal/proccpu"
	"github.com/fastfsd/fastfsd/internal/vmtest"
	"github.com/fastfsd/fastfsd/perf/bench"
)

// cpuMeter reads each host back-end's CPU time over each guest fio job's
// timed phase. Per job fio.sh echoes `FASTFS-JOB name=LABEL/JOB` just
// before fio starts, fio echoes `FASTFS-TIMED name=LABEL/JOB` from its
// exec_prerun hook (after it laid out its files, before its timed
// phase; once per job thread, and the first counts), and fio.sh echoes
// `FASTFS-FIO name=LABEL/JOB {json}` after fio exited. The meter reads
// the CPU time of LABEL's back-end process tree at the first
// FASTFS-TIMED line and at the FASTFS-FIO line; the difference is that
// job's.
type cpuMeter struct {
	// tagOf maps a row label to its share's tag, for the rows whose
	// back-end is a host process of its own (not virtio-9p, whose
	// server is QEMU, nor fastfsd-9p, which runs in the guest).
	tagOf map[string]string
	// read is the CPU time of a process tree: proccpu.TreeCPU, or a
	// test's stand-in.
	read func(pid int) (time.Duration, error)

	// started[LABEL/JOB] is set by its FASTFS-JOB line; start holds the
	// CPU at the first FASTFS-TIMED line after it.
	started map[string]bool
	start   map[string]time.Duration
	// got[LABEL/JOB] is the CPU over each FASTFS-FIO line of that name,
	// in console order; -1 where no reading was possible (the start
	// marker was missing, /proc could not be read), so that the n-th
	// entry always belongs to the n-th FASTFS-FIO line of the name.
	got  map[string][]time.Duration
	errs []string // why readings are missing, for the report
}

func newCPUMeter(shares []vmtest.Share, targets []target) *cpuMeter {
	m := &cpuMeter{tagOf: map[string]string{}, read: proccpu.TreeCPU,
		started: map[string]bool{}, start: map[string]time.Duration{}, got: map[string][]time.Duration{}}
	for _, t := range targets {
		for _, s := range shares {
			if s.Tag == t.tag && s.Backend != nil {
				m.tagOf[t.label] = t.tag
			}
		}
	}
	return m
}

// line is vmtest.Config.OnLine.
func (m *cpuMeter) line(l string, backendPID map[string]int) {
	i := strings.Index(l, "FASTFS-")
	if i < 0 {
		return
	}
	word, rest, _ := strings.Cut(l[i:], " ")
	if word != "FASTFS-JOB" && word != "FASTFS-TIMED" && word != "FASTFS-FIO" {
		return
	}
	kv, _, _ := strings.Cut(rest, " ")
	name, ok := strings.CutPrefix(kv, "name=")
	if !ok {
		return
	}
	label, _, _ := strings.Cut(name, "/")
	tag, ok := m.tagOf[label]
	if !ok {
		return // not measured: no host process of its own
	}
	if word == "FASTFS-JOB" {
		m.started[name] = true
		delete(m.start, name)
		return
	}
	if word == "FASTFS-TIMED" {
		if _, ok := m.start[name]; ok || !m.started[name] {
			return // a later job thread's, or no FASTFS-JOB before it
		}
	}
	pid, ok := backendPID[tag]
	var cpu time.Duration
	var err error
	if !ok {
		err = fmt.Errorf("no back-end PID for share %s", tag)
	} else {
		cpu, err = m.read(pid)
	}
	if word == "FASTFS-TIMED" {
		if err != nil {
			m.errs = append(m.errs, fmt.Sprintf("%s start: %v", name, err))
			m.started[name] = false
			return
		}
		m.start[name] = cpu
		return
	}
	c0, timed := m.start[name]
	delete(m.start, name)
	delete(m.started, name)
	switch {
	case err != nil:
		m.errs = append(m.errs, fmt.Sprintf("%s end: %v", name, err))
		cpu = -1
	case !timed:
		m.errs = append(m.errs, name+": no FASTFS-JOB and FASTFS-TIMED lines before its result (is -fio-script an older fio.sh?)")
		cpu = -1
	case cpu < c0:
		// TreeCPU counts the descendants alive at each reading: one
		// that exited took its CPU with it. No figure, not a wrong one.
		m.errs = append(m.errs, fmt.Sprintf("%s: the back-end's tree used %v at the start and %v at the end (a child exited?)", name, c0, cpu))
		cpu = -1
	default:
		cpu -= c0
	}
	m.got[name] = append(m.got[name], cpu)
}

// fill adds every fio report to t, each with its back-end's CPU time when
// the meter has one. The reports and the meter's readings must match one
// to one per name (both come from the same FASTFS-FIO lines); anything
// else is an error rather than a figure put on the wrong job.
func (m *cpuMeter) fill(t *bench.GuestTable, fio []vmtest.FIO) error {
	used := map[string]int{}
	for _, f := range fio {
		label, _, _ := strings.Cut(f.Name, "/")
		if _, measured := m.tagOf[label]; !measured {
			if err := t.Add(f.Name, f.JSON); err != nil {
				return err
			}
			continue
		}
		n := used[f.Name]
		used[f.Name]++
		if n >= len(m.got[f.Name]) {
			return fmt.Errorf("back-end CPU: fio report %d of %s has no CPU reading (%d readings)", n+1, f.Name, len(m.got[f.Name]))
		}
		cpu := m.got[f.Name][n]
		var err error
		if cpu < 0 {
			err = t.Add(f.Name, f.JSON)
		} else {
			err = t.AddWithCPU(f.Name, f.JSON, cpu)
		}
		if err != nil {
			return err
		}
	}
	for name, v := range m.got {
		if used[name] != len(v) {
			return fmt.Errorf("back-end CPU: %d readings for %s but %d fio reports", len(v), name, used[name])
		}
	}
	return nil
}
