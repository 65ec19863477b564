// Command bare serves the baseline handler of `latch bench --baseline` as a
// process of its own, so external load generators (wrk) can drive it and
// latch serve the same way. With -response-bytes it pads its answer to the
// size of a verify answer, so the comparison is of like-sized responses.
// See BENCHMARKS.md.
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
	size := flag.Int("response-bytes", 0, "pad the JSON answer to this many bytes (0: the loadgen baseline's {\"ok\":true})")
	flag.Parse()
	h := loadgen.BareHandler()
	if *size > 0 {
		h = loadgen.PaddedHandler(*size)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
