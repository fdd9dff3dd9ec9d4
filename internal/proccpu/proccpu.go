// Package proccpu reads the CPU time a process, or a process and its
// descendants, has used, from /proc: the back-end CPU figures of
// cmd/fastfs-backendbench (through internal/vhostload) and of
// fastfs-run's guest table. A leaf: it imports nothing of the module.
package proccpu

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcCPU is a process's utime+stime (all its threads, living and dead)
// from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from after the last ')'. utime and stime are fields 14, 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("proccpu: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("proccpu: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proccpu: /proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// TreeCPU is ProcCPU of pid and every descendant of it alive now: some
// back-ends (the C virtiofsd's namespace sandbox) serve from a child.
func TreeCPU(pid int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	total, err := ProcCPU(pid)
	if err != nil {
		return 0, err
	}
	todo := children[pid]
	for len(todo) > 0 {
		p := todo[0]
		todo = append(todo[1:], children[p]...)
		if c, err := ProcCPU(p); err == nil {
			total += c
		}
	}
	return total, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100
