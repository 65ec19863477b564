package serveproc

import (
	"net/http"
	"strings"
	"testing"
)

func TestStartServesTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs latch serve")
	}
	s := Start(t, Options{})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/sessions", strings.NewReader(`{"subject":"alice"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/sessions with the API key: %d, want 201", resp.StatusCode)
	}
	s.Stop()
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Fatal("server still answers after Stop")
	}
	if strings.Contains(s.Output(), s.APIKey) {
		t.Fatal("server output contains the API key")
	}
}
