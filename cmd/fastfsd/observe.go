package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastfsd/fastfsd/internal/metrics"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// observeFlags are the --metrics and --pprof flags every serving subcommand
// takes. Both are off by default: with neither, the daemon opens no port
// and its workers record no per-request timing.
type observeFlags struct {
	metrics string
	pprof   string
	// The open listeners (listen, or inherit in a namespace sandbox).
	metricsLn, pprofLn net.Listener
	// extra are served at /metrics beside the request counters (set
	// before serve).
	extra []prometheus.Collector
}

func addObserveFlags(fl *flag.FlagSet) *observeFlags {
	o := new(observeFlags)
	fl.StringVar(&o.metrics, "metrics", "", "serve per-operation request counts, errors by errno, bytes, service-time histograms, per-worker load, and Go runtime and process metrics at http://ADDR/metrics (Prometheus text, or OpenMetrics if the scraper asks; e.g. 127.0.0.1:9100); off by default")
	fl.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof at http://ADDR/debug/pprof/ (e.g. 127.0.0.1:6060); off by default")
	return o
}

// enabled reports whether workers should record per-request metrics.
func (o *observeFlags) enabled() bool { return o.metrics != "" }

// start opens the requested endpoints and serves them. Errors (a port in
// use) are returned before serving starts so the daemon fails early with a
// clear message.
func (o *observeFlags) start() error {
	if err := o.listen(); err != nil {
		return err
	}
	o.serve()
	return nil
}

// listen opens the requested endpoints' listeners.
func (o *observeFlags) listen() error {
	for _, e := range []struct {
		flag, addr string
		ln         *net.Listener
	}{{"--metrics", o.metrics, &o.metricsLn}, {"--pprof", o.pprof, &o.pprofLn}} {
		if e.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", e.addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w; pick a free host:port", e.flag, e.addr, err)
		}
		*e.ln = ln
	}
	return nil
}

// files returns the open listeners as files (names "metrics", "pprof"),
// to hand to a namespace sandbox's child (namespace.go).
func (o *observeFlags) files() (names []string, files []*os.File, err error) {
	for _, e := range []struct {
		name string
		ln   net.Listener
	}{{"metrics", o.metricsLn}, {"pprof", o.pprofLn}} {
		if e.ln == nil {
			continue
		}
		f, err := e.ln.(*net.TCPListener).File()
		if err != nil {
			return nil, nil, fmt.Errorf("--%s: %w", e.name, err)
		}
		e.ln.Close() // f is a duplicate
		names, files = append(names, e.name), append(files, f)
	}
	return names, files, nil
}

// inherit adopts the listeners a namespace sandbox's supervisor passed.
func (o *observeFlags) inherit(fds map[string]int) error {
	for _, e := range []struct {
		name, addr string
		ln         *net.Listener
	}{{"metrics", o.metrics, &o.metricsLn}, {"pprof", o.pprof, &o.pprofLn}} {
		if e.addr == "" {
			continue
		}
		f, err := inheritedFile(fds, e.name)
		if err != nil {
			return err
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--%s: inherited listener: %w", e.name, err)
		}
		*e.ln = ln
	}
	return nil
}

// serve serves the open listeners in the background.
func (o *observeFlags) serve() {
	if o.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(stats.Default, o.extra...))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(o.metricsLn)
	}
	if o.pprofLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(o.pprofLn)
	}
}
