package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxBodySize caps every request body (64 KiB, per the contract).
const MaxBodySize = 64 << 10

// readJSON decodes the request body into dst: a single JSON object with no
// unknown members, sent as application/json (or, where mergePatch is set,
// application/merge-patch+json), at most MaxBodySize bytes. If optional is
// set, an empty body leaves dst alone; null is never taken for "empty".
func readJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	buf, err := readBody(w, r, optional)
	if buf == nil {
		return err
	}
	defer putBuffer(buf)
	return decodeJSON(buf, dst)
}

// readBody reads the request body into a pooled buffer (the caller puts it
// back) and checks what readJSON checks before decoding: its size, its
// Content-Type and that it starts as a JSON object. An empty optional body
// is a nil buffer and no error.
func readBody(w http.ResponseWriter, r *http.Request, optional bool) (*bytes.Buffer, error) {
	if r.ContentLength > MaxBodySize {
		return nil, tooLarge()
	}
	buf := getBuffer()
	if err := readLimited(w, r, buf); err != nil {
		putBuffer(buf)
		return nil, err
	}
	if buf.Len() == 0 {
		putBuffer(buf)
		if optional {
			return nil, nil
		}
		return nil, badRequest("a JSON request body is required")
	}
	if err := checkContentType(r); err != nil {
		putBuffer(buf)
		return nil, err
	}
	// null would decode as "nothing sent" and [] as a type error: both
	// are refused alike, whether or not the body is optional.
	if b := bytes.TrimLeft(buf.Bytes(), " \t\r\n"); len(b) > 0 && b[0] != '{' {
		putBuffer(buf)
		return nil, badRequest("the request body must be a JSON object")
	}
	return buf, nil
}

// readLimited reads at most MaxBodySize bytes of r's body into buf. A body
// of unknown length goes through http.MaxBytesReader, which also makes the
// server close the connection once the limit is passed. One of a known
// length at most the limit cannot pass it (net/http delivers no more than
// Content-Length bytes), so it is read without that reader's allocation,
// still bounded in case a caller's Body is longer than it says.
func readLimited(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) error {
	var err error
	if r.ContentLength < 0 {
		_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodySize))
	} else if r.Body != nil {
		err = readAtMost(buf, r.Body, MaxBodySize)
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*http.MaxBytesError)):
		return tooLarge()
	}
	return badRequest("the request body could not be read")
}

// readAtMost reads rd to its end into buf, or fails with a
// *http.MaxBytesError once more than max bytes came. (An io.LimitedReader
// would do, but escapes to the heap.)
func readAtMost(buf *bytes.Buffer, rd io.Reader, max int) error {
	for buf.Len() <= max {
		buf.Grow(bytes.MinRead)
		b := buf.AvailableBuffer()
		b = b[:min(cap(b), max+1-buf.Len())]
		n, err := rd.Read(b)
		buf.Write(b[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return &http.MaxBytesError{Limit: int64(max)}
}

// decodeJSON decodes the body read by readBody into dst.
func decodeJSON(buf *bytes.Buffer, dst any) error {
	dec := json.NewDecoder(buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest(describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the request body must hold a single JSON object")
	}
	return nil
}

func tooLarge() error {
	return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
		fmt.Sprintf("request bodies are limited to %d bytes", MaxBodySize))
}

func checkContentType(r *http.Request) error {
	ct := header(r.Header, "Content-Type")
	if ct == "application/json" { // what every client sends: no parameter map to parse
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/merge-patch+json") {
		return nil
	}
	return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "request bodies must be sent as Content-Type: application/json")
}

// describeJSONError explains a decoding failure without quoting the input:
// a body may hold a token.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		if te.Field != "" {
			return "member " + strconv.Quote(te.Field) + " must be " + jsonKind(te.Type.Kind().String())
		}
		return "the request body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "ptr", "interface":
		return "a JSON value of another type"
	}
	return "a number"
}

// writeJSON sends v with status. API answers are not cached (many carry
// tokens) unless the handler set its own Cache-Control, as verify does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := getBuffer()
	defer putBuffer(buf)
	if err := encode(buf, v); err != nil {
		writeProblem(w, problemFor(err))
		return
	}
	writeBody(w, status, buf.Bytes())
}

// Header values every JSON answer carries, shared read-only: assigning them
// saves MIMEHeader.Set's slice per header. Nothing in this package writes
// into a header's value slice (h[k][i] = …); Add appends, which copies a
// slice of capacity 1.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
	hdrNosniff = []string{"nosniff"}
)

// header is h.Get(key) for a key already in canonical form (a constant),
// without canonicalising it again on every call.
func header(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// autoContentLength is the largest body net/http (HTTP/1.1 and HTTP/2)
// sends with a Content-Length of its own, computed without allocating,
// when the handler writes it at once and returns without flushing: its
// response buffer's size (bufferBeforeChunkingSize). A larger body would
// be sent chunked, so writeBody sets the header itself (two allocations).
const autoContentLength = 2048

// writeBody sends the JSON body b with status, the headers of writeJSON.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON[:1:1]
	if header(h, "Cache-Control") == "" {
		h["Cache-Control"] = hdrNoStore[:1:1]
	}
	h["X-Content-Type-Options"] = hdrNosniff[:1:1]
	if len(b) > autoContentLength {
		h.Set("Content-Length", strconv.Itoa(len(b)))
	}
	w.WriteHeader(status)
	w.Write(b)
}

// marshal encodes v as one line of JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encode(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encode(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Request and response bodies pass through pooled buffers: they are the
// largest allocations of a verify call. Buffers that grew large (a big
// data object) are dropped rather than kept.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 16<<10 {
		return
	}
	// Bodies may hold tokens: clear them before the buffer is reused.
	b.Reset()
	clear(b.Bytes()[:b.Cap()])
	bufPool.Put(b)
}

// rfc3339 formats t in UTC, or omits it when zero.
type timeUTC time.Time

func (t timeUTC) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format(time.RFC3339Nano) + `"`), nil
}
