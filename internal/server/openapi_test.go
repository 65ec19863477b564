package server

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/api"
)

// TestOpenAPICoversRoutes checks that every route registered in the mux is
// in the OpenAPI document, and that every operation of the document is
// routed to the pattern that documents it.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	h := newHarness(t)
	h.create("alice", "") // the log check needs some output
	routes := h.srv.Routes()
	for _, r := range routes {
		if !documented[r] {
			t.Errorf("route %q is not in the OpenAPI document", r)
		}
	}
	// Every documented operation reaches the route of the same pattern.
	param := regexp.MustCompile(`\{[^}]+\}`)
	for op := range documented {
		method, path, _ := strings.Cut(op, " ")
		if !slices.Contains(routes, op) {
			t.Errorf("documented operation %q is not routed", op)
			continue
		}
		concrete := param.ReplaceAllString(path, "x")
		_, pattern := h.srv.mux.Handler(httptest.NewRequest(method, concrete, nil))
		if pattern != op {
			t.Errorf("%s %s is routed to %q, documented as %q", method, concrete, pattern, op)
		}
	}
	// Every problem code the server uses is in the document's enum.
	for code := range titles {
		if !strings.Contains(string(api.OpenAPI), `"`+code+`"`) {
			t.Errorf("problem code %q is not documented", code)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t)
	r := h.do(req{method: "GET", path: "/openapi.json"})
	wantStatus(t, r, 200)
	if string(r.body) != string(api.OpenAPI) || r.header.Get("Content-Type") != "application/json" {
		t.Error("/openapi.json does not serve the document")
	}
}
