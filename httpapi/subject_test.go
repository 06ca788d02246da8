package httpapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/ledger"
)

const (
	subjectApp     = "1127900106117"
	subjectSession = "user-4711-PERSONAL"
	subjectBot1    = "7300000000000000001"
	subjectBot2    = "7300000000000000002"
)

// subjectServer is a server whose Subjects list, on a fake API with an
// OAuth app, as the app's sessions (profile app-cn; bot is a static
// token). The subject owns perBot conversations on each of two bots,
// beside as many of someone else.
type subjectServer struct {
	*bundle
	fake *cozetest.Server
	mine []string
	logs *logbuf.Buffer
	key  []byte
}

func setupSubjects(t *testing.T, perBot int) *subjectServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := cozetest.NewServer(cozetest.WithJWTApp(subjectApp, map[string]*rsa.PublicKey{"k1": &key.PublicKey}))
	t.Cleanup(fake.Close)
	app, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: fake.URL, AppID: subjectApp, KeyID: "k1", PrivateKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ss := &subjectServer{fake: fake, logs: &logbuf.Buffer{}, key: []byte("0123456789abcdef-session-key")}
	subjects := httpapi.SubjectsFunc(func(profile, session string) (*discovery.Walker, func(), error) {
		switch profile {
		case "app-cn":
		case "bot":
			return nil, nil, &httpapi.ProfileError{Profile: profile, Reason: "a static token, which has no sessions"}
		default:
			return nil, nil, &httpapi.ProfileError{Profile: profile, Reason: "not a profile of this server"}
		}
		client, err := coze.NewClient(fake.URL, app.Session(session), coze.WithTimeout(5*time.Second))
		if err != nil {
			return nil, nil, err
		}
		return &discovery.Walker{Lister: client, Attempts: 1, Backoff: time.Millisecond}, func() {}, nil
	})
	ss.bundle = setup(t, func(c *httpapi.Config) {
		c.Subjects, c.SessionKey = subjects, ss.key
		c.Logger = slog.New(slog.NewTextHandler(ss.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	next := int64(7379996104700000000)
	for _, bot := range []string{subjectBot1, subjectBot2} {
		for i := range 2 * perBot {
			next++
			session := subjectSession
			if i%2 == 1 {
				session = "someone-else"
			} else {
				ss.mine = append(ss.mine, fmt.Sprint(next))
			}
			fake.AddConversations(cozetest.Conversation{ID: fmt.Sprint(next), BotID: bot, Owner: cozetest.Identity{App: subjectApp, Session: session}})
		}
	}
	return ss
}

// subjectStatus is the create answer of a subject request as a client
// reads it.
type subjectStatus struct {
	Status    string `json:"status"`
	Batch     string `json:"batch"`
	Total     int    `json:"total"`
	Pending   int    `json:"pending"`
	Discovery *struct {
		Found      int  `json:"found"`
		Enqueued   int  `json:"enqueued"`
		Duplicate  int  `json:"duplicate"`
		Listings   int  `json:"listings"`
		Incomplete bool `json:"incomplete"`
	} `json:"discovery"`
}

// TestSubjectRequest: a POST naming a subject lists the session's
// conversations, as the session, into a verified batch holding exactly
// them; neither the answer, the status, the request's record nor the log
// holds the session name; a replay answers 200 without listing again;
// another body is 409.
func TestSubjectRequest(t *testing.T) {
	t.Parallel()
	ss := setupSubjects(t, 60)
	ctx := context.Background()
	subject := map[string]any{"profile": "app-cn", "session": subjectSession, "bot_ids": []string{subjectBot1, subjectBot2}}
	body := requestBody(t, map[string]any{"request_id": "dsr-4711", "subject": subject, "note": "DSR-4711", "queue": "gdpr"})
	code, created := ss.do("POST", "/v1/erasure-requests", ss.write, body)
	var st subjectStatus
	if err := json.Unmarshal(created, &st); err != nil || code != http.StatusCreated {
		t.Fatalf("create: %d %s (%v)", code, created, err)
	}
	if st.Total != len(ss.mine) || st.Pending != len(ss.mine) || st.Batch != "dsr-4711" || st.Discovery == nil ||
		st.Discovery.Found != len(ss.mine) || st.Discovery.Enqueued != len(ss.mine) || st.Discovery.Listings != 2 || st.Discovery.Incomplete {
		t.Errorf("created: %s", created)
	}
	if unfed, n := ss.work(t, "gdpr"); unfed != len(ss.mine) || n != int64(len(ss.mine)) {
		t.Errorf("%d ids wait to be fed in queue gdpr and feeding makes %d tasks, want %d", unfed, n, len(ss.mine))
	}
	b, ok, err := ss.ledger.Batch(ctx, "dsr-4711")
	if err != nil || !ok || b.Profile != "app-cn" || !b.HasSession || b.Verification.State != ledger.VerificationPending {
		t.Errorf("batch %+v, %v, %v; want a verified batch of app-cn's session", b, ok, err)
	}
	_, proof := ss.do("GET", "/v1/erasure-requests/dsr-4711/report", ss.read, "", "Accept", "application/x-ndjson")
	var inBatch []string
	for line := range strings.Lines(string(proof)) {
		var row struct {
			ID string `json:"conversation_id"`
		}
		if err := json.Unmarshal([]byte(line), &row); err == nil && row.ID != "" {
			inBatch = append(inBatch, row.ID)
		}
	}
	slices.Sort(inBatch)
	if !slices.Equal(inBatch, ss.mine) {
		t.Errorf("the batch holds %d ids, want exactly the subject's %d", len(inBatch), len(ss.mine))
	}
	lists := ss.fake.ListCalls()
	if lists != 4 { // 60 conversations a bot: 2 pages each
		t.Errorf("%d list calls, want 4", lists)
	}

	code, replay := ss.do("POST", "/v1/erasure-requests", ss.write, body)
	var again subjectStatus
	if err := json.Unmarshal(replay, &again); err != nil || code != http.StatusOK || again.Total != len(ss.mine) || again.Discovery != nil {
		t.Errorf("replay: %d %s", code, replay)
	}
	if n := ss.fake.ListCalls(); n != lists {
		t.Errorf("the replay listed again: %d list calls, was %d", n, lists)
	}
	other := requestBody(t, map[string]any{"request_id": "dsr-4711", "subject": map[string]any{"profile": "app-cn", "session": subjectSession,
		"bot_ids": []string{subjectBot1}}})
	if code, got := ss.do("POST", "/v1/erasure-requests", ss.write, other); code != http.StatusConflict || !strings.Contains(string(got), `"conflict"`) {
		t.Errorf("same id, other body: %d %s", code, got)
	}
	_, status := ss.do("GET", "/v1/erasure-requests/dsr-4711", ss.read, "")
	record, err := ss.rdb.HGetAll(ctx, keyspace.New(ledger.DefaultPrefix).Request("dsr-4711")).Result()
	if err != nil || !strings.HasPrefix(record["body"], ledger.SessionHashPrefix) {
		t.Errorf("request record %v (%v): want the body's keyed hash", record, err)
	}
	for what, text := range map[string]string{"create answer": string(created), "replay answer": string(replay), "status": string(status),
		"request record": fmt.Sprint(record), "log": ss.logs.String()} {
		if strings.Contains(text, "PERSONAL") {
			t.Errorf("the %s holds the session name: %s", what, text)
		}
	}
}

// TestSubjectDiscoveryIncomplete: a listing that cannot finish still
// answers 201, with what was found queued and discovery.incomplete set.
func TestSubjectDiscoveryIncomplete(t *testing.T) {
	t.Parallel()
	ss := setupSubjects(t, 10)
	ss.fake.ScriptList(cozetest.BadGateway) // the first page answers 502, and the walker tries once
	body := requestBody(t, map[string]any{"request_id": "dsr-part", "subject": map[string]any{"profile": "app-cn", "session": subjectSession,
		"bot_ids": []string{subjectBot1, subjectBot2}}})
	code, got := ss.do("POST", "/v1/erasure-requests", ss.write, body)
	var st subjectStatus
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusCreated || st.Discovery == nil || !st.Discovery.Incomplete ||
		st.Discovery.Listings != 2 {
		t.Errorf("create: %d %s", code, got)
	}
	listings, err := ss.ledger.Listings(context.Background(), "dsr-part")
	if err != nil || len(listings) != 2 || listings[0].Error == "" {
		t.Errorf("listings %+v, %v: want both recorded, the first stopped", listings, err)
	}
	if strings.Contains(string(got)+ss.logs.String(), "PERSONAL") {
		t.Errorf("the answer or the log holds the session name:\n%s\n%s", got, ss.logs.String())
	}
}

// TestSubjectBadInput: each bad subject is a 400 naming the field, and
// none repeats the session; nothing is created. A server without
// Subjects answers 501 subjects_unavailable and creates nothing either.
func TestSubjectBadInput(t *testing.T) {
	t.Parallel()
	ss := setupSubjects(t, 1)
	subj := func(fields string) string { return `{"request_id":"x","subject":{` + fields + `}}` }
	const bots = `"bot_ids":["7300000000000000001"]`
	many := make([]string, 201)
	for i := range many {
		many[i] = fmt.Sprint(7300000000000000001 + i)
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct {
		name, body, code, field string
	}{
		{"no profile", subj(`"session":"PERSONAL-1",` + bots), "missing_field", "subject.profile"},
		{"no session", subj(`"profile":"app-cn",` + bots), "missing_field", "subject.session"},
		{"no bots", subj(`"profile":"app-cn","session":"PERSONAL-1"`), "missing_field", "subject.bot_ids"},
		{"empty bots", subj(`"profile":"app-cn","session":"PERSONAL-1","bot_ids":[]`), "invalid_field", "subject.bot_ids"},
		{"bad bot", subj(`"profile":"app-cn","session":"PERSONAL-1","bot_ids":["7300000000000000001","7300000000000000002","x-PERSONAL"]`),
			"invalid_field", "subject.bot_ids[2]"},
		{"bad connector", subj(`"profile":"app-cn","session":"PERSONAL-1",` + bots + `,"connector_ids":["1024","7"]`), "invalid_field", "subject.connector_ids[1]"},
		{"too many bots", subj(`"profile":"app-cn","session":"PERSONAL-1","bot_ids":` + string(manyJSON)), "invalid_field", "subject.bot_ids"},
		{"bad session", subj(`"profile":"app-cn","session":"PERSONAL\n1",` + bots), "invalid_field", "subject.session"},
		{"session not a string", subj(`"profile":"app-cn","session":4711,` + bots), "invalid_field", "subject.session"},
		{"subject not an object", `{"request_id":"x","subject":"PERSONAL"}`, "invalid_field", "subject"},
		{"unknown subject field", subj(`"profile":"app-cn","session":"PERSONAL-1",` + bots + `,"email":"a@b"`), "unknown_field", "subject.email"},
		{"bad profile", subj(`"profile":"a:b","session":"PERSONAL-1",` + bots), "invalid_field", "subject.profile"},
		{"unknown profile", subj(`"profile":"app-eu","session":"PERSONAL-1",` + bots), "invalid_field", "subject.profile"},
		{"static profile", subj(`"profile":"bot","session":"PERSONAL-1",` + bots), "invalid_field", "subject.profile"},
	} {
		code, got := ss.do("POST", "/v1/erasure-requests", ss.write, tc.body)
		var e httpapi.ErrorBody
		if err := json.Unmarshal(got, &e); err != nil || code != http.StatusBadRequest || e.Error.Code != tc.code || e.Error.Field != tc.field || e.Error.Message == "" {
			t.Errorf("%s: %d %.300s; want 400 %s field %q", tc.name, code, got, tc.code, tc.field)
		}
		if strings.Contains(string(got), "PERSONAL") && tc.name != "bad bot" {
			t.Errorf("%s: the answer repeats the session: %s", tc.name, got)
		}
	}
	if n, _ := ss.rdb.DBSize(context.Background()).Result(); n != 0 || ss.fake.ListCalls() != 0 {
		t.Errorf("bad subjects left %d keys and made %d list calls", n, ss.fake.ListCalls())
	}

	plain := setup(t)
	body := requestBody(t, map[string]any{"request_id": "dsr-1", "subject": map[string]any{"profile": "app-cn", "session": subjectSession,
		"bot_ids": []string{subjectBot1}}})
	code, got := plain.do("POST", "/v1/erasure-requests", plain.write, body)
	var e httpapi.ErrorBody
	if err := json.Unmarshal(got, &e); err != nil || code != http.StatusNotImplemented || e.Error.Code != "subjects_unavailable" ||
		!strings.Contains(e.Error.Message, "--profiles") || strings.Contains(string(got), "PERSONAL") {
		t.Errorf("without Subjects: %d %s", code, got)
	}
	if n, _ := plain.rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Errorf("a refused subject request left %d keys", n)
	}
}
