// Package flame renders CPU profiles (pprof format) as flame graphs in SVG:
// one box per stack frame, as wide as the samples it was on the stack for,
// children stacked above their caller. Hovering a box shows its function,
// samples and share (an SVG <title>).
//
// It uses github.com/google/pprof/profile to read profiles: the format is
// a gzipped protocol buffer with its own string and location tables that
// is not worth parsing by hand.
package flame

import (
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Node is a frame in the merged call tree.
type Node struct {
	Name     string
	Unit     string // the root's: what Value counts ("nanoseconds", "count")
	Value    int64  // samples with this frame on the stack at this position
	Children map[string]*Node
}

func newNode(name string) *Node { return &Node{Name: name, Children: map[string]*Node{}} }

// Tree merges a profile's samples (the sample type at index si, e.g. 1 for
// cpu nanoseconds in a Go CPU profile) into a call tree rooted at "all".
func Tree(p *profile.Profile, si int) *Node {
	root := newNode("all")
	for _, s := range p.Sample {
		v := s.Value[si]
		if v == 0 {
			continue
		}
		root.Value += v
		n := root
		// Locations are leaf first; inlined functions are leaf first within
		// a location.
		for i := len(s.Location) - 1; i >= 0; i-- {
			lines := s.Location[i].Line
			for j := len(lines) - 1; j >= 0; j-- {
				name := "?"
				if lines[j].Function != nil {
					name = lines[j].Function.Name
				}
				c := n.Children[name]
				if c == nil {
					c = newNode(name)
					n.Children[name] = c
				}
				c.Value += v
				n = c
			}
		}
	}
	return root
}

// ReadFile reads a pprof profile and returns its call tree for the sample
// type named typ ("cpu", "samples", …), or the last sample type if typ is
// empty.
func ReadFile(path, typ string) (*Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("flame: parse %s: %w", path, err)
	}
	si := len(p.SampleType) - 1
	for i, st := range p.SampleType {
		if st.Type == typ {
			si = i
		}
	}
	if si < 0 {
		return nil, fmt.Errorf("flame: %s has no samples", path)
	}
	root := Tree(p, si)
	root.Unit = p.SampleType[si].Unit
	return root, nil
}

// WriteSVG draws the tree as a flame graph width pixels wide.
func WriteSVG(w io.Writer, root *Node, title string, width int) error {
	const rowH, top, fontW = 16, 40, 6.5
	depth := maxDepth(root)
	height := top + (depth+1)*rowH + 20
	total := float64(root.Value)
	if total == 0 {
		total = 1
	}
	bw := &errWriter{w: w}
	bw.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="11">`+"\n", width, height)
	bw.printf(`<rect width="100%%" height="100%%" fill="#fdfdf6"/><text x="%d" y="22" font-size="15" text-anchor="middle">%s</text>`+"\n", width/2, html.EscapeString(title))
	var draw func(n *Node, x float64, d int)
	draw = func(n *Node, x float64, d int) {
		wpx := float64(n.Value) / total * float64(width-20)
		if wpx < 0.3 {
			return
		}
		y := height - 20 - (d+1)*rowH
		bw.printf(`<g><title>%s (%s, %.2f%%)</title><rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" rx="2"/>`,
			html.EscapeString(n.Name), amount(n.Value, root.Unit), 100*float64(n.Value)/total, x, y, wpx, rowH-1, color(n.Name))
		if chars := int(wpx / fontW); chars >= 3 {
			label := short(n.Name)
			if len(label) > chars {
				label = label[:max(chars-2, 1)] + ".."
			}
			bw.printf(`<text x="%.2f" y="%d">%s</text>`, x+3, y+rowH-4, html.EscapeString(label))
		}
		bw.printf("</g>\n")
		kids := make([]*Node, 0, len(n.Children))
		for _, c := range n.Children {
			kids = append(kids, c)
		}
		sort.Slice(kids, func(a, b int) bool { return kids[a].Name < kids[b].Name })
		cx := x
		for _, c := range kids {
			draw(c, cx, d+1)
			cx += float64(c.Value) / total * float64(width-20)
		}
	}
	draw(root, 10, 0)
	bw.printf("</svg>\n")
	return bw.err
}

// Top returns the n functions with the most self samples, for an index.
func Top(root *Node, n int) []string {
	self := map[string]int64{}
	var walk func(*Node)
	walk = func(nd *Node) {
		s := nd.Value
		for _, c := range nd.Children {
			s -= c.Value
			walk(c)
		}
		if nd != root {
			self[nd.Name] += s
		}
	}
	walk(root)
	names := make([]string, 0, len(self))
	for k := range self {
		names = append(names, k)
	}
	sort.Slice(names, func(a, b int) bool { return self[names[a]] > self[names[b]] })
	var out []string
	for i := 0; i < n && i < len(names); i++ {
		out = append(out, fmt.Sprintf("%s %.1f%%", short(names[i]), 100*float64(self[names[i]])/float64(max(root.Value, 1))))
	}
	return out
}

// amount formats v in unit: CPU nanoseconds as milliseconds, else a count.
func amount(v int64, unit string) string {
	if unit == "nanoseconds" {
		return fmt.Sprintf("%.1f ms CPU", float64(v)/1e6)
	}
	return fmt.Sprintf("%d samples", v)
}

func maxDepth(n *Node) int {
	d := 0
	for _, c := range n.Children {
		d = max(d, 1+maxDepth(c))
	}
	return d
}

// short drops the package path: "github.com/x/y/pkg.(*T).M" → "pkg.(*T).M".
func short(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}

// color is a warm colour fixed per function name (so the same function has
// the same colour in every graph), blue-ish for the kernel and runtime.
func color(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	if strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "syscall.") || strings.HasPrefix(name, "internal/runtime") {
		return fmt.Sprintf("rgb(%d,%d,%d)", 90+v%40, 150+v%50, 200+v%55)
	}
	return fmt.Sprintf("rgb(%d,%d,%d)", 205+v%50, 80+(v>>8)%120, 30+(v>>16)%40)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
