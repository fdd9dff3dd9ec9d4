// Package bench is the side-by-side benchmark harness: it runs one fixed
// workload suite (fio jobs and a metadata test) against several subjects —
// the native directory, fastfsd, peers — alternating them run by run
// (A B C A B C …) so that drift on a noisy machine hits all alike, and
// reports each figure's median with its ratio to the baseline measured in
// the same run. Results are written as a text table, JSON and an SVG chart.
//
// bench observes from outside: subjects are processes and mountpoints; it
// imports nothing of the data plane.
package bench
