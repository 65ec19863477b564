package demo

import (
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestDescribeDevice(t *testing.T) {
	cases := []struct{ ua, name, kind string }{
		{uaChromeLinux, "Chrome on Linux", "desktop"},
		{uaFirefoxWindows, "Firefox on Windows", "desktop"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36", "Headless Chrome on Linux", "desktop"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS", "desktop"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone", "mobile"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", "Chrome on iPhone", "mobile"},
		{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPad", "tablet"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36", "Chrome on Android", "mobile"},
		{"Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Safari/537.36", "Chrome on Android", "tablet"},
		{"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android", "mobile"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68", "Edge on Windows", "desktop"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera on Windows", "desktop"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on ChromeOS", "desktop"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on macOS", "desktop"},
		{"curl/8.5.0", "curl", "tool"},
		{"Go-http-client/1.1", "Go program", "tool"},
		{"python-requests/2.32.3", "Python program", "tool"},
		{"", "Unknown device", "desktop"},
		{"something/1.0", "Unknown device", "desktop"},
		{"Mozilla/5.0 (X11; Linux x86_64)", "Browser on Linux", "desktop"},
	}
	for _, c := range cases {
		got := describeDevice(c.ua)
		if got.Name != c.name || got.Kind != c.kind {
			t.Errorf("describeDevice(%q) = %+v, want %q (%s)", c.ua, got, c.name, c.kind)
		}
	}
}

func TestTimeWords(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rel := []struct {
		ago  time.Duration
		want string
	}{
		{0, "just now"},
		{9 * time.Second, "just now"},
		{45 * time.Second, "45 seconds ago"},
		{time.Minute, "1 minute ago"},
		{59 * time.Minute, "59 minutes ago"},
		{3 * time.Hour, "3 hours ago"},
		{47 * time.Hour, "47 hours ago"},
		{72 * time.Hour, "3 days ago"},
		{-29 * time.Second, "in 29 seconds"},
		{-23 * time.Hour, "in 23 hours"},
	}
	for _, c := range rel {
		if got := relative(now.Add(-c.ago), now); got != c.want {
			t.Errorf("relative(-%v) = %q, want %q", c.ago, got, c.want)
		}
	}
	dur := map[time.Duration]string{
		30 * time.Minute:                   "30 minutes",
		24 * time.Hour:                     "24 hours",
		time.Minute + 30*time.Second:       "1 minute 30 seconds",
		3 * time.Second:                    "3 seconds",
		1500 * time.Millisecond:            "1 second",
		200 * time.Millisecond:             "200ms",
		0:                                  "0 seconds",
		time.Hour + time.Minute + 1e9:      "1 hour 1 minute 1 second",
		26*time.Hour + 15*time.Minute:      "26 hours 15 minutes",
		-time.Second:                       "0 seconds",
		2*time.Hour + 500*time.Millisecond: "2 hours",
	}
	for d, want := range dur {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
	cd := map[time.Duration]string{
		0:                               "0:00",
		-time.Second:                    "0:00",
		1500 * time.Millisecond:         "0:02",
		29*time.Minute + 41*time.Second: "29:41",
		time.Hour + 2*time.Minute + 3e9: "1:02:03",
		30 * time.Minute:                "30:00",
	}
	for d, want := range cd {
		if got := countdown(d); got != want {
			t.Errorf("countdown(%v) = %q, want %q", d, got, want)
		}
	}
	if got := pollInterval(30 * time.Minute); got != 15*time.Second {
		t.Errorf("pollInterval(30m) = %v", got)
	}
	if got := pollInterval(3 * time.Second); got != time.Second {
		t.Errorf("pollInterval(3s) = %v", got)
	}
}

func TestIPLimiter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newIPLimiter(rate.Every(time.Minute), 2)
	for i := range 2 {
		if _, ok := l.reserve("a", now); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if _, ok := l.reserve("a", now); ok {
		t.Fatal("third attempt in a burst of 2 allowed")
	}
	if _, ok := l.reserve("b", now); !ok {
		t.Fatal("another IP refused")
	}
	// Giving a token back (a successful sign-in) restores it.
	giveBack, ok := l.reserve("c", now)
	if !ok {
		t.Fatal("refused")
	}
	giveBack()
	for i := range 2 {
		if _, ok := l.reserve("c", now); !ok {
			t.Fatalf("after a give-back, attempt %d refused", i+1)
		}
	}
	if _, ok := l.reserve("a", now.Add(time.Minute)); !ok {
		t.Fatal("no refill after the interval")
	}
	// Memory stays bounded: a flood of addresses prunes the idle ones.
	for i := range maxTrackedIPs + 10 {
		l.reserve(string(rune(i))+"x", now.Add(time.Hour))
	}
	if n := len(l.ips); n > maxTrackedIPs {
		t.Fatalf("limiter tracks %d IPs, cap %d", n, maxTrackedIPs)
	}
}

func TestClientIP(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "[2001:db8::1]:443"
	if got := clientIP(r); got != "2001:db8::1" {
		t.Errorf("clientIP = %q", got)
	}
	r.RemoteAddr = "@"
	if got := clientIP(r); got != "@" {
		t.Errorf("clientIP of a non-IP address = %q", got)
	}
}
