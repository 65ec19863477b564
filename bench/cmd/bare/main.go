// Command bare serves the baseline handler of `latch bench --baseline` as a
// process of its own, so external load generators (wrk) can drive it and
// latch serve the same way. See BENCHMARKS.md.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/latch-sessions/latch/internal/loadgen"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18990", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: loadgen.BareHandler(), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
