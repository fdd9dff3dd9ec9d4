package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/fastfsd/fastfsd/internal/metrics"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// observeFlags are the --metrics and --pprof flags every serving subcommand
// takes. Both are off by default: with neither, the daemon opens no port
// and its workers record no per-request timing.
type observeFlags struct {
	metrics string
	pprof   string
}

func addObserveFlags(fl *flag.FlagSet) *observeFlags {
	o := new(observeFlags)
	fl.StringVar(&o.metrics, "metrics", "", "serve per-operation request counts, errors by errno, bytes, service-time histograms, per-worker load, and Go runtime and process metrics at http://ADDR/metrics (Prometheus text, or OpenMetrics if the scraper asks; e.g. 127.0.0.1:9100); off by default")
	fl.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof at http://ADDR/debug/pprof/ (e.g. 127.0.0.1:6060); off by default")
	return o
}

// enabled reports whether workers should record per-request metrics.
func (o *observeFlags) enabled() bool { return o.metrics != "" }

// start opens the requested endpoints. Errors (a port in use) are returned
// before serving starts so the daemon fails early with a clear message.
func (o *observeFlags) start() error {
	if o.metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(stats.Default))
		if err := serveHTTP("--metrics", o.metrics, mux); err != nil {
			return err
		}
	}
	if o.pprof != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if err := serveHTTP("--pprof", o.pprof, mux); err != nil {
			return err
		}
	}
	return nil
}

func serveHTTP(flagName, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w; pick a free host:port", flagName, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return nil
}
