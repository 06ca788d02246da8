package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// page is what the layout gets: the page's own data, who looks, and how
// often to reload.
type page struct {
	Name    string
	Viewer  *viewer
	Refresh int // seconds; 0: the page does not reload
	Data    any
}

// RefreshText says how often the page reloads: "5s", "1m".
func (p page) RefreshText() string { return span(time.Duration(p.Refresh) * time.Second) }

// errorPage is a page that says what went wrong, and where to go back to.
type errorPage struct {
	Title, Message, Back string
}

// loginForm is the sign-in page.
type loginForm struct {
	Next, Error string
}

// pageNames are the templates, each rendered inside layout.html.
var pageNames = []string{"batches", "batch", "queues", "profiles", "login", "error"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"stamp": stamp,
		"path":  url.PathEscape,
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes page name with data, whole or not at all: a template
// error half-way must not leave half a page that looks whole.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v *viewer, data any) {
	p := page{Name: name, Viewer: v, Data: data}
	if v != nil && c.cfg.Refresh > 0 && status == http.StatusOK {
		p.Refresh = int(c.cfg.Refresh.Round(time.Second) / time.Second)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.cfg.Logger.Error("console: rendering a page", "page", name, "error", err)
		http.Error(w, "the console could not draw this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// failed answers a page whose data could not be read, and logs why (a
// Redis error, never a secret).
func (c *Console) failed(w http.ResponseWriter, r *http.Request, v *viewer, what string, err error) {
	c.cfg.Logger.Error("console: "+what, "error", err)
	c.render(w, r, http.StatusInternalServerError, "error", v, errorPage{Title: "Not available",
		Message: what + " failed (is Redis there?). The page tries again when you reload it."})
}
