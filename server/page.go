package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/server/auth"
	"github.com/strata-backup/strata/server/wire"
)

// The status page (PROTOCOL.md §9): GET / shows every stream against the
// policy, rendered on the server and usable without JavaScript. A browser
// signs in once with a read token through a form (POST /login); the server
// answers with a session cookie (HttpOnly, SameSite=Strict, Secure over
// TLS) that names a session held in memory, never the token itself. The
// page has no actions, so nothing on it can be forged across sites.

//go:embed page.html
var pageHTML string

var (
	pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
		"fmtTime": func(t any) string {
			switch v := t.(type) {
			case time.Time:
				return v.UTC().Format("2006-01-02 15:04:05Z")
			case *time.Time:
				if v != nil {
					return v.UTC().Format("2006-01-02 15:04:05Z")
				}
			}
			return "-"
		},
		"ago": func(s *float64) string {
			if s == nil {
				return "-"
			}
			return humanDuration(time.Duration(*s * float64(time.Second)))
		},
		"secs": func(s *float64) string {
			if s == nil {
				return "-"
			}
			return humanDuration(time.Duration(*s * float64(time.Second)))
		},
		"short": func(id string) string { return id[:min(len(id), 12)] },
	}).Parse(pageHTML))
	// pageCSP allows the page's one inline style sheet by its hash and
	// nothing else: no script, no frame, forms only to this server.
	pageCSP = func() string {
		var b bytes.Buffer
		if err := pageTmpl.ExecuteTemplate(&b, "style", nil); err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b.Bytes())
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}()
)

// SessionCookie is the name of the status page's session cookie.
const SessionCookie = "strata_session"

const (
	// sessionTTL is how long a sign-in lasts.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions held; beyond it the oldest go.
	maxSessions = 1024
	// maxLoginBody bounds a login form: a token is 50 bytes.
	maxLoginBody = 4 << 10
	// DefaultStatusDays is how many days the page's timelines show.
	DefaultStatusDays = 14
)

// session is one signed-in browser. It keeps the token so that every page
// view authenticates it again: a token revoked (and the tokens file
// reloaded) ends its sessions at once.
type session struct {
	token   string
	expires time.Time
}

// sessions are keyed by the SHA-256 of the cookie value, so a lookup's
// timing depends on the hash, never on how much of a guessed cookie is
// right.
type sessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]session
}

func (ss *sessions) create(token string, now time.Time) string {
	var b [32]byte
	rand.Read(b[:])
	cookie := base64.RawURLEncoding.EncodeToString(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[[sha256.Size]byte]session{}
	}
	for k, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, k)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest [sha256.Size]byte
		var at time.Time
		for k, s := range ss.m {
			if at.IsZero() || s.expires.Before(at) {
				oldest, at = k, s.expires
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(cookie))] = session{token: token, expires: now.Add(sessionTTL)}
	return cookie
}

func (ss *sessions) token(cookie string, now time.Time) (string, bool) {
	if cookie == "" || len(cookie) > 64 {
		return "", false
	}
	k := sha256.Sum256([]byte(cookie))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[k]
	if !ok || !now.Before(s.expires) {
		delete(ss.m, k)
		return "", false
	}
	return s.token, true
}

// pageHeaders are sent with every page: no caching of what a token shows,
// no framing, no script.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// pageRoutes registers the status page and its login form.
func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /{$}", s.page(s.statusPage))
	s.mux.HandleFunc("GET /login", s.page(func(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
		return s.renderLogin(w, http.StatusOK, "")
	}))
	s.mux.HandleFunc("POST /login", s.page(s.login))
}

// page wraps a page handler with the request log, metrics and audit trail
// the API's handlers have. Pages answer errors as HTML.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{start: time.Now(), endpoint: r.Pattern}
		rq.bodyDeadline = s.boundBody(w, r)
		sw := &statusWriter{ResponseWriter: w}
		err := h(sw, r, rq)
		if err != nil {
			pageHeaders(sw)
			sw.WriteHeader(err.status)
			template.HTMLEscape(sw, []byte(err.msg))
		}
		s.finish(r, sw, rq, err)
	}
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, msg string) *apiError {
	pageHeaders(w)
	w.WriteHeader(status)
	pageTmpl.ExecuteTemplate(w, "login", struct{ Error string }{msg})
	return nil
}

// login checks a token from the form in constant time (auth.Set) and, for a
// token with the read scope, starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		return badRequest("malformed login form")
	}
	rq.bodyRead = true
	token := r.PostForm.Get("token")
	id, ok := s.o.Tokens().Authenticate(strings.TrimSpace(token))
	if !ok || !id.Allows(auth.Read, "") {
		// Refusals go to the audit trail like the API's (finish).
		rq.audit = &wire.AuditRecord{Action: "login", Object: "/login", Detail: "unknown token or no read scope"}
		w.Header().Set("Connection", "close")
		return s.renderLogin(w, http.StatusUnauthorized, "Unknown token, or a token without the read scope.")
	}
	rq.id = id
	rq.audit = &wire.AuditRecord{Action: "login", Object: "/login"}
	cookie := s.sessions.create(strings.TrimSpace(token), s.o.Now())
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: cookie, Path: "/", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// pageIdentity authenticates a page request by its session cookie.
func (s *Server) pageIdentity(r *http.Request) (*auth.Identity, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, false
	}
	token, ok := s.sessions.token(c.Value, s.o.Now())
	if !ok {
		return nil, false
	}
	id, ok := s.o.Tokens().Authenticate(token)
	if !ok || !id.Allows(auth.Read, "") {
		return nil, false
	}
	return id, true
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	id, ok := s.pageIdentity(r)
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	rq.id = id
	rep, cat, err := s.statusReport(r.Context())
	if err != nil {
		return storeError(err)
	}
	days := s.o.StatusDays
	to := rep.Time
	from := to.Add(-time.Duration(days) * 24 * time.Hour)
	data := pageData{Report: rep, Who: id.Name, Days: days}
	for i := range rep.Streams {
		data.Rows = append(data.Rows, timelineRow(&rep.Streams[i], cat, from, to))
	}
	pageHeaders(w)
	var b bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&b, "status", data); err != nil {
		return errorf(http.StatusInternalServerError, wire.CodeInternal, "render the page: %v", err)
	}
	w.Write(b.Bytes())
	return nil
}

type pageData struct {
	Report *ops.Report
	Who    string
	Days   int
	Rows   []pageRow
}

// pageRow is one stream with its timeline laid out: x positions in pixels
// over the last Days days, clipped to the drawing.
type pageRow struct {
	S                 *ops.StreamStatus
	Window            *ops.Window // the newest restorable window
	W                 int
	Wins, Gaps, Snaps []mark
}

type mark struct {
	X, Width float64
	Title    string
}

const timelineWidth = 360

func timelineRow(st *ops.StreamStatus, cat *index.Catalog, from, to time.Time) pageRow {
	row := pageRow{S: st, W: timelineWidth}
	if n := len(st.Windows); n > 0 {
		row.Window = &st.Windows[n-1]
	}
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		v := t.Sub(from).Seconds() / span * timelineWidth
		return min(max(v, 0), timelineWidth)
	}
	add := func(list *[]mark, a, b time.Time, title string) {
		if b.Before(from) || a.After(to) {
			return
		}
		xa, xb := x(a), x(b)
		*list = append(*list, mark{X: round1(xa), Width: round1(max(xb-xa, 1.5)), Title: title})
	}
	for _, w := range st.Windows {
		add(&row.Wins, w.From, w.To, w.From.UTC().Format(time.RFC3339)+" to "+w.To.UTC().Format(time.RFC3339))
	}
	for _, g := range st.Gaps {
		add(&row.Gaps, g.After, g.Before, g.After.UTC().Format(time.RFC3339)+" to "+g.Before.UTC().Format(time.RFC3339))
	}
	for _, sn := range cat.Stream(st.Stream) {
		if sn.Time.Before(from) || sn.Time.After(to) {
			continue
		}
		row.Snaps = append(row.Snaps, mark{X: round1(min(x(sn.Time), timelineWidth-2)), Title: sn.ID.Short() + " " + sn.Time.UTC().Format(time.RFC3339)})
	}
	return row
}

func round1(v float64) float64 { return float64(int(v*10+0.5)) / 10 }

// humanDuration writes a duration for people: "42s", "5m10s", "3h20m", "4d2h".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	hours := int(d.Round(time.Hour) / time.Hour)
	return strconv.Itoa(hours/24) + "d" + strconv.Itoa(hours%24) + "h"
}
