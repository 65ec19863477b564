package demo

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// pageNames are the templates under assets/templates, each rendered inside
// layout.html.
var pageNames = []string{"login", "home", "error", "confirm"}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).ParseFS(assets, "assets/templates/layout.html", "assets/templates/icons.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("demo: parsing templates: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}

// asset is a static file with its content type and a content hash, used
// as its ETag and as the version in its URL.
type asset struct {
	body        []byte
	contentType string
	etag        string
	url         string
}

func loadStatic() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(assets, "assets/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		v := hex.EncodeToString(sum[:6])
		name := path.Base(p)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[name] = asset{body: b, contentType: ct, etag: `"` + v + `"`, url: "/static/" + name + "?v=" + v}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo: loading static files: %w", err)
	}
	return out, nil
}

// serveStatic serves an embedded file. URLs carry the content hash, so a
// versioned URL may be cached for good; others are revalidated by ETag.
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := h.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	if v := r.URL.Query().Get("v"); v != "" && `"`+v+`"` == a.etag {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(a.body)
}
