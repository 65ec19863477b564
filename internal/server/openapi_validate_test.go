package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/latch-sessions/latch/api"
)

// The end-to-end tests prove api/openapi.json: every request the harness
// sends and every answer it gets passes through contractCheck, which
// validates them against the document with kin-openapi (JSON Schema
// 2020-12 for OpenAPI 3.1). A route that drifts from the document fails
// the test that used it.
//
// The rules:
//   - Every answer of a documented operation must be documented: its
//     status, content type, headers and body.
//   - A request the server accepted (2xx, 304) must be valid by the
//     document, security included.
//   - A request the server refused as malformed (400, 413, 415) must be
//     invalid by the document too, unless the rule it broke is one JSON
//     Schema cannot express (inexpressible, matched by the problem's
//     detail): so the document is not looser than the server.
//   - A path or method the document does not have must be answered with a
//     problem document (404 or 405).

// inexpressible lists the server's input rules that the document states
// in prose only, by the start of the detail of the problem they cause.
var inexpressible = map[string]string{
	"subject: must be 1 to 256 bytes":                        "JSON Schema counts characters, not UTF-8 bytes (maxLength 256 is exact for ASCII only)",
	"data: larger than the data size":                        "the 16 KiB limit is on the compact JSON text of data; JSON Schema cannot measure it",
	"data: too large":                                        "as above, before compaction",
	"claims: accesstoken: invalid extra claims: larger than": "the 4 KiB limit on compact claims, as for data",
	"unknown query parameter":                                "OpenAPI cannot say that a query takes no other parameters",
	"auth_time: is in the future":                            "relative to the server's clock",
	"auth_time: is before the sessio":                        "relative to the session's created_at",
	"request bodies are limited to":                          "the 64 KiB body limit is on the bytes sent",
	"the request body could not be r":                        "a transport failure, not a document",
	"the request body must hold a sin":                       "JSON text after the object: a validator decodes one JSON value and stops",
	"subject: must be UTF-8":                                 "a JSON string is always UTF-8 once decoded; the server sees the raw bytes",
}

var (
	contractOnce   sync.Once
	contractDoc    *openapi3.T
	contractRouter routers.Router
	contractErr    error
)

func loadContract() (*openapi3.T, routers.Router, error) {
	contractOnce.Do(func() {
		l := openapi3.NewLoader()
		doc, err := l.LoadFromData(api.OpenAPI)
		if err == nil {
			err = doc.Validate(context.Background())
		}
		var r routers.Router
		if err == nil {
			r, err = gorillamux.NewRouter(doc)
		}
		contractDoc, contractRouter, contractErr = doc, r, err
	})
	return contractDoc, contractRouter, contractErr
}

// contractCheck is an http.RoundTripper that checks each exchange against
// the document and reports a mismatch as a test error.
type contractCheck struct {
	t    testing.TB
	next http.RoundTripper
}

func (c *contractCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	var respBody []byte
	if resp.Header.Get("Content-Type") != "text/event-stream" { // a stream is read by the test itself
		respBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if err != nil {
			return resp, nil
		}
	}
	if msg := checkExchange(req, reqBody, resp, respBody); msg != "" {
		c.t.Errorf("api/openapi.json disagrees with the server on %s %s → %d:\n%s\nrequest body: %.300s\nanswer: %.300s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, msg, reqBody, respBody)
	}
	return resp, nil
}

// formats are the string formats the document uses, as kin-openapi
// defines them (they are only annotations unless a validator asserts them).
var formats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("ipv4", openapi3.NewIPValidator(true)),
	openapi3.WithStringFormatValidator("ipv6", openapi3.NewIPValidator(false)),
}

// checkExchange returns what in the exchange contradicts the document, or
// "".
func checkExchange(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	doc, router, err := loadContract()
	if err != nil {
		return "the document does not load: " + err.Error()
	}
	// A copy of the request as the validator reads it.
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(r)
	if err != nil {
		if req.Method == http.MethodHead {
			return "" // HEAD is answered like GET, without a body
		}
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			return "routing: " + err.Error()
		}
		// Not an operation of the document. A known path with another
		// method must be a 405 problem; an unknown path under /v1/ a 404
		// problem; anything else belongs to a handler mounted at "/" (the
		// demo app), and if the server itself answered for it (a problem
		// document: a 404, or a 500 for a panic), it must be a proper one.
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			if resp.StatusCode != http.StatusMethodNotAllowed {
				return fmt.Sprintf("the document has no %s operation on this path, yet the server answered %d", req.Method, resp.StatusCode)
			}
		case strings.HasPrefix(req.URL.Path, "/v1/") && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed:
			return fmt.Sprintf("the document has no such path, yet the server answered %d", resp.StatusCode)
		case resp.Header.Get("Content-Type") != "application/problem+json":
			return ""
		}
		return checkProblem(doc, resp, respBody)
	}

	in := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:      checkCredential,
			MultiError:              true,
			SchemaValidationOptions: formats,
		},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	var out []string
	switch s := resp.StatusCode; {
	case s < 300 || s == http.StatusNotModified:
		if reqErr != nil {
			out = append(out, "the server accepted a request the document refuses: "+oneLine(reqErr))
		}
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge || s == http.StatusUnsupportedMediaType:
		if reqErr == nil {
			detail := problemDetail(respBody)
			if !isInexpressible(detail) {
				out = append(out, fmt.Sprintf("the server refused (%q) a request the document accepts", detail))
			}
		}
	}

	in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: formats,
			// A stream's status and headers are checked; its events are
			// tested against docs/protocol.md by the event tests.
			ExcludeResponseBody: resp.Header.Get("Content-Type") == "text/event-stream"},
	}
	rin.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		out = append(out, "the answer is not as documented: "+oneLine(err))
	}
	return strings.Join(out, "\n")
}

// checkCredential is the document's security, checked as far as the
// request shows it: a Bearer or DPoP credential, or the session cookie.
func checkCredential(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if _, ok := bearer(r); !ok {
			return errors.New("no Bearer credential")
		}
	case s.Type == "http" && strings.EqualFold(s.Scheme, "dpop"):
		if a := r.Header.Get("Authorization"); len(a) <= 5 || !strings.EqualFold(a[:5], "dpop ") {
			return errors.New("no DPoP credential")
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err != nil {
			return errors.New("no " + s.Name + " cookie")
		}
	case s.Type == "apiKey" && s.In == "header":
		if r.Header.Get(s.Name) == "" {
			return errors.New("no " + s.Name + " header")
		}
	default:
		return fmt.Errorf("unknown security scheme %s/%s", s.Type, s.Scheme)
	}
	return nil
}

// checkProblem checks an answer outside the document's operations against
// its Problem schema.
func checkProblem(doc *openapi3.T, resp *http.Response, body []byte) string {
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		return "not a problem document: Content-Type " + ct
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "not JSON: " + err.Error()
	}
	if err := doc.Components.Schemas["Problem"].Value.VisitJSON(v, append(formats, openapi3.EnableJSONSchema2020())...); err != nil {
		return "not a Problem: " + oneLine(err)
	}
	if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
		return "405 without Allow"
	}
	return ""
}

func problemDetail(body []byte) string {
	var p struct{ Detail string }
	json.Unmarshal(body, &p)
	return p.Detail
}

func isInexpressible(detail string) bool {
	for prefix := range inexpressible {
		if strings.HasPrefix(detail, prefix) {
			return true
		}
	}
	return false
}

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

func TestOpenAPIDocumentLoads(t *testing.T) {
	if _, _, err := loadContract(); err != nil {
		t.Fatal(err)
	}
}

// The check is not vacuous: each kind of drift it is meant to catch is
// caught.
func TestContractCheckCatchesDrift(t *testing.T) {
	id := "ses_K9jLVbJJKYeSyILeD-dt8Axl"
	view := `{"id":"` + id + `","subject":"alice","created_at":"2030-01-02T03:04:05Z","auth_time":"2030-01-02T03:04:05Z","last_seen_at":"2030-01-02T03:04:05Z","idle_expires_at":"2030-01-02T03:34:05Z","expires_at":"2030-01-03T03:04:05Z","ip":"","user_agent":"","data":{},"claims":{},"version":1}`
	problem := func(status int, code, detail string) string {
		return fmt.Sprintf(`{"type":"https://github.com/latch-sessions/latch/blob/main/api/problems.md#%s","title":"x","status":%d,"detail":%q,"code":%q}`, code, status, detail, code)
	}
	for _, c := range []struct {
		name         string
		method, path string
		reqBody      string
		status       int
		ct, body     string
		header       map[string]string
		want         string // "" : no drift
	}{
		{"documented answer", "GET", "/v1/sessions/" + id, "", 200, "application/json", `{"session":` + view + `}`, map[string]string{"ETag": `"1"`}, ""},
		{"an undocumented member", "GET", "/v1/sessions/" + id, "", 200, "application/json", `{"session":` + view[:len(view)-1] + `,"undocumented":"x"}}`, nil, "not as documented"},
		{"an undocumented status", "GET", "/v1/sessions/" + id, "", 418, "application/problem+json", problem(418, "bad_request", "x"), nil, "status is not supported"},
		{"a problem with an unknown code", "GET", "/v1/sessions/" + id, "", 404, "application/problem+json", problem(404, "gone", "x"), nil, "not as documented"},
		{"accepted, but refused by the document", "POST", "/v1/sessions", `{"subject":"a\u0001b"}`, 201, "application/json", `{}`, nil, "accepted a request the document refuses"},
		{"verify with both tokens accepted", "POST", "/v1/sessions/verify", `{"session_token":"lts_x","access_token":"e.y.j"}`, 200, "application/json", `{"session":` + view + `}`, map[string]string{"Cache-Control": "private, max-age=60"}, "accepted a request the document refuses"},
		{"refused, but the document accepts", "POST", "/v1/sessions", `{"subject":"alice"}`, 400, "application/problem+json", problem(400, "bad_request", "subject: taken"), nil, "refused"},
		{"refused by a rule the document cannot state", "POST", "/v1/sessions", `{"subject":"alice"}`, 400, "application/problem+json", problem(400, "bad_request", "subject: must be 1 to 256 bytes"), nil, ""},
		{"the document refuses it too", "POST", "/v1/sessions", `{"subject":""}`, 400, "application/problem+json", problem(400, "bad_request", "subject: must be 1 to 256 bytes"), nil, ""},
		{"a wrong method answered 200", "PUT", "/v1/sessions/" + id, "", 200, "application/json", `{}`, nil, "no PUT operation"},
		{"a 405 without Allow", "PUT", "/v1/sessions/" + id, "", 405, "application/problem+json", problem(405, "method_not_allowed", "x"), nil, "405 without Allow"},
		{"a 429 without Retry-After", "POST", "/v1/refresh", `{"refresh_token":"ltr_x"}`, 429, "application/problem+json", problem(429, "rate_limited", "x"), nil, "Retry-After"},
		{"a bad IP address accepted", "POST", "/v1/sessions", `{"subject":"a","ip":"300.1.1.1"}`, 201, "application/json", `{}`, nil, "accepted a request the document refuses"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, "http://latch.test"+c.path, strings.NewReader(c.reqBody))
			req.Header.Set("Authorization", "Bearer "+testAPIKey)
			if c.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp := &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {c.ct}}}
			for k, v := range c.header {
				resp.Header.Set(k, v)
			}
			got := checkExchange(req, []byte(c.reqBody), resp, []byte(c.body))
			switch {
			case c.want == "" && got != "":
				t.Errorf("flagged a consistent exchange: %s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("drift not caught (want %q): %q", c.want, got)
			}
		})
	}
}
