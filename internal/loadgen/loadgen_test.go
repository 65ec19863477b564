package loadgen

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

func TestBareRun(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	defer srv.Close()
	res, err := Run(context.Background(), Config{Server: srv.URL, Connections: 4, Duration: 200 * time.Millisecond, Warmup: -1}, Bare)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("implausible result %+v", res)
	}
}

func TestUnreachableServerFails(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	url := srv.URL
	srv.Close()
	_, err := Run(context.Background(), Config{Server: url, APIKey: "k", Connections: 1, Duration: 50 * time.Millisecond, Warmup: -1}, VerifySession)
	if err == nil {
		t.Fatal("no error against a closed port")
	}
}
