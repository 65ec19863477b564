// Package browsertest runs tests in a real headless Chromium, driven with
// chromedp.
//
// Tests call [New] for a browser; without Chromium they are skipped, unless
// LATCH_REQUIRE_INTEGRATION=1 (as in CI), when they fail. The binary is
// $LATCH_CHROMIUM, else Debian's /usr/bin/chromium, else chromium,
// chromium-browser or google-chrome on $PATH.
//
// Every browser runs with a fresh temporary profile and with the features
// that talk to the network on their own turned off, so tests see only their
// own traffic. Waits are bounded polls of the page, never sleeps.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds one browser (all its tabs and contexts) unless the
// test's deadline comes first.
const DefaultTimeout = 2 * time.Minute

// Path returns the Chromium binary to use, or "" if there is none.
func Path() string {
	if p := os.Getenv("LATCH_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium process.
type Browser struct {
	t   testing.TB
	ctx context.Context // the first tab, in the default browser context
}

// New starts a headless Chromium for t and closes it when t ends. It skips
// t if Chromium is missing, or fails it if LATCH_REQUIRE_INTEGRATION=1.
func New(t testing.TB) *Browser {
	t.Helper()
	path := Path()
	if path == "" {
		msg := "browser test needs Chromium: install Debian's chromium (apt-get install -y chromium) or set LATCH_CHROMIUM"
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg + " (LATCH_REQUIRE_INTEGRATION=1)")
		}
		t.Skip(msg)
	}
	timeout := DefaultTimeout
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && time.Until(dl) < timeout+10*time.Second {
			timeout = max(10*time.Second, time.Until(dl)-10*time.Second)
		}
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	return &Browser{t: t, ctx: bctx}
}

// Tab returns the browser's first tab, in its default browser context.
func (b *Browser) Tab() context.Context { return b.ctx }

// NewContext returns a tab in a new, separate browser context: its own
// cookie jar and storage, like a second browser or a private window.
func (b *Browser) NewContext() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("creating a browser context: %v", err)
	}
	b.t.Cleanup(cancel)
	return ctx
}

// Do runs actions in tab and fails the test if one fails.
func Do(t testing.TB, tab context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tab, actions...); err != nil {
		Screenshot(t, tab, "failure")
		t.Fatal(err)
	}
}

// Run runs an action in tab and returns its value; it fails the test if
// the action fails.
func Run[T any](t testing.TB, tab context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(tab, a)
	if err != nil {
		Screenshot(t, tab, "failure")
		t.Fatal(err)
	}
	return v
}

// WaitJS polls the boolean JavaScript expression expr in tab until it is
// true, failing the test after timeout. Errors while the page is between
// documents (a navigation in flight) count as "not yet".
func WaitJS(t testing.TB, tab context.Context, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(tab, min(2*time.Second, max(time.Until(deadline), 100*time.Millisecond)))
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if tab.Err() != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-tab.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	Screenshot(t, tab, "timeout")
	msg := fmt.Sprintf("waited %v for %s (page: %s)", timeout, expr, Location(tab))
	if lastErr != nil {
		msg += "; last error: " + lastErr.Error()
	}
	t.Fatal(msg)
}

// Click clicks the element sel selects and waits until the page it
// navigates to has loaded; it returns that page's HTTP response.
func Click(t testing.TB, tab context.Context, sel string) *network.Response {
	t.Helper()
	res, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		Screenshot(t, tab, "failure")
		t.Fatalf("clicking %s: %v", sel, err)
	}
	return res
}

// Eval evaluates a JavaScript expression in tab.
func Eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	return Run(t, tab, chromedp.Evaluate[T](expr))
}

// Location returns the URL of tab's page, or "" if it cannot be read.
func Location(tab context.Context) string {
	loc, _ := chromedp.Run(tab, chromedp.Location())
	return loc
}

// Cookies returns every cookie tab's browser context holds for url, HttpOnly
// ones included (the DevTools protocol sees them; page scripts do not).
func Cookies(t testing.TB, tab context.Context, url string) []*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(tab, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatalf("reading cookies: %v", err)
	}
	return res.Cookies
}

// Screenshot saves a full-page PNG of tab into $LATCH_SCREENSHOTS, if set,
// for looking at pages while developing or debugging. It never fails the
// test. Screenshots are not to be committed.
func Screenshot(t testing.TB, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LATCH_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	safe := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name() + "-" + name)
	p := filepath.Join(dir, safe+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", p)
}
