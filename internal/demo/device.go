package demo

import (
	"fmt"
	"strings"
	"time"
)

// device is a friendly description of a User-Agent: "Chrome on Linux".
type device struct {
	Name string // "Chrome on Linux", "curl", "Unknown device"
	Kind string // "desktop", "mobile", "tablet" or "tool": picks the icon
}

// describeDevice turns a User-Agent header into something a person
// recognises. It knows the common browsers and systems and a few HTTP
// tools; anything else is "Unknown device".
func describeDevice(ua string) device {
	if ua == "" {
		return device{"Unknown device", "desktop"}
	}
	has := func(s string) bool { return strings.Contains(ua, s) }
	for _, t := range tools {
		if strings.HasPrefix(ua, t.prefix) {
			return device{t.name, "tool"}
		}
	}
	var browser string
	switch {
	case has("Edg/") || has("EdgA/") || has("EdgiOS/"):
		browser = "Edge"
	case has("OPR/") || has("Opera"):
		browser = "Opera"
	case has("SamsungBrowser/"):
		browser = "Samsung Internet"
	case has("Vivaldi/"):
		browser = "Vivaldi"
	case has("Firefox/") || has("FxiOS/"):
		browser = "Firefox"
	case has("HeadlessChrome/"):
		browser = "Headless Chrome"
	case has("CriOS/") || has("Chrome/"):
		browser = "Chrome"
	case has("Chromium/"):
		browser = "Chromium"
	case has("Safari/") && has("Version/"):
		browser = "Safari"
	}
	var system, kind string
	switch {
	case has("iPad"):
		system, kind = "iPad", "tablet"
	case has("iPhone") || has("iPod"):
		system, kind = "iPhone", "mobile"
	case has("Android"):
		system, kind = "Android", "mobile"
		if !has("Mobile") {
			kind = "tablet"
		}
	case has("Windows"):
		system, kind = "Windows", "desktop"
	case has("CrOS"):
		system, kind = "ChromeOS", "desktop"
	case has("Macintosh") || has("Mac OS X"):
		system, kind = "macOS", "desktop"
	case has("Linux") || has("X11"):
		system, kind = "Linux", "desktop"
	}
	switch {
	case browser != "" && system != "":
		return device{browser + " on " + system, kind}
	case browser != "":
		return device{browser, "desktop"}
	case system != "":
		return device{"Browser on " + system, kind}
	}
	return device{"Unknown device", "desktop"}
}

// tools are HTTP clients recognised by their User-Agent prefix.
var tools = []struct{ prefix, name string }{
	{"curl/", "curl"},
	{"Wget/", "Wget"},
	{"HTTPie/", "HTTPie"},
	{"Go-http-client/", "Go program"},
	{"python-requests/", "Python program"},
	{"python-httpx/", "Python program"},
	{"Python-urllib/", "Python program"},
	{"node", "Node.js program"},
	{"undici", "Node.js program"},
	{"axios/", "Node.js program"},
	{"PostmanRuntime/", "Postman"},
	{"okhttp/", "Android app"},
}

// relative says how long ago t was, coarsely: "just now", "5 minutes ago".
func relative(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		d = -d
		if d < 10*time.Second {
			return "just now"
		}
		return "in " + span(d)
	case d < 10*time.Second:
		return "just now"
	}
	return span(d) + " ago"
}

func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return plural(int(d/time.Second), "second")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// duration writes a configured duration for people: "30 minutes",
// "1 minute 30 seconds", "3 seconds".
func duration(d time.Duration) string {
	if d <= 0 {
		return "0 seconds"
	}
	var parts []string
	if h := d / time.Hour; h > 0 {
		parts = append(parts, plural(int(h), "hour"))
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		parts = append(parts, plural(int(m), "minute"))
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 {
		parts = append(parts, plural(int(s), "second"))
	}
	if len(parts) == 0 {
		return d.String()
	}
	return strings.Join(parts, " ")
}

// countdown formats a remaining time as the countdown shows it: "29:41",
// "1:02:03".
func countdown(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int((d + time.Second - 1) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s%3600/60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
