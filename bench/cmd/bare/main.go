// Command bare serves the baseline handler of `latch bench --baseline` as a
// process of its own, so external load generators (wrk) can drive it and
// latch serve the same way. With -response-bytes it pads its answer to the
// size of a verify answer, so the comparison is of like-sized responses.
// See BENCHMARKS.md.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latch-sessions/latch/internal/loadgen"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18990", "listen address")
	size := flag.Int("response-bytes", 0, "pad the JSON answer to this many bytes (0: the loadgen baseline's {\"ok\":true})")
	flag.Parse()
	h := loadgen.BareHandler()
	if *size > 0 {
		h = padded(*size)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// padded answers like loadgen.BareHandler with a body of n bytes (at least
// the 20 of {"ok":true,"pad":""}) and an explicit Content-Length, as latch
// serve sends.
func padded(n int) http.Handler {
	const frame = `{"ok":true,"pad":""}`
	body := []byte(frame[:len(frame)-2] + strings.Repeat("x", max(0, n-len(frame))) + `"}`)
	clen := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", clen)
		w.Write(body)
	})
}
