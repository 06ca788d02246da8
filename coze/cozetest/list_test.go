package cozetest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

const bot = "7379996104798000001"

var (
	listEpoch = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	// oneShot opens a connection per request: on a reused connection
	// net/http silently retries a GET that met a reset, and the reset
	// faults would go unseen.
	oneShot = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
)

// listAnswer is what the list endpoint answered; the field types make the
// decoding fail if ids are not strings or times not integers.
type listAnswer struct {
	Status int    `json:"-"`
	Header string `json:"-"` // X-Tt-Logid
	Body   string `json:"-"`
	Code   int64  `json:"code"`
	Msg    string `json:"msg"`
	Data   struct {
		Conversations []struct {
			ID            string            `json:"id"`
			Name          *string           `json:"name"`
			MetaData      map[string]string `json:"meta_data"`
			CreatorID     string            `json:"creator_id"`
			ConnectorID   string            `json:"connector_id"`
			CreatedAt     int64             `json:"created_at"`
			UpdatedAt     int64             `json:"updated_at"`
			LastSectionID string            `json:"last_section_id"`
		} `json:"conversations"`
		HasMore bool `json:"has_more"`
	} `json:"data"`
	Detail struct {
		LogID string `json:"logid"`
	} `json:"detail"`
}

func (a listAnswer) ids() []string {
	out := []string{}
	for _, c := range a.Data.Conversations {
		out = append(out, c.ID)
	}
	return out
}

// tryList GETs the list with token and query; JSON bodies are decoded, others
// kept in Body.
func tryList(srv *cozetest.Server, token, query string) (listAnswer, error) {
	req, err := http.NewRequest(http.MethodGet, srv.URL+cozetest.ListPath+"?"+query, nil)
	if err != nil {
		return listAnswer{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := oneShot.Do(req)
	if err != nil {
		return listAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return listAnswer{}, err
	}
	ans := listAnswer{Status: resp.StatusCode, Header: resp.Header.Get("X-Tt-Logid"), Body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &ans); err != nil {
			return ans, fmt.Errorf("list answer %d: %w", resp.StatusCode, err)
		}
	}
	return ans, nil
}

func listAs(t *testing.T, srv *cozetest.Server, token, query string) listAnswer {
	t.Helper()
	ans, err := tryList(srv, token, query)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

// page lists one page of bot and checks it is a success.
func page(t *testing.T, srv *cozetest.Server, token, query string) listAnswer {
	t.Helper()
	ans := listAs(t, srv, token, "bot_id="+bot+"&"+query)
	if ans.Status != http.StatusOK || ans.Code != 0 || ans.Msg != "" {
		t.Fatalf("list %s: %d %d %q", query, ans.Status, ans.Code, ans.Msg)
	}
	return ans
}

// rawDelete DELETEs id with plain net/http and returns the HTTP status and
// the code.
func rawDelete(t *testing.T, srv *cozetest.Server, token, id string) (int, int64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/v1/conversations/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Code int64 `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body.Code
}

// convs makes n conversations of bot, ids first, first+1, …, created a
// minute apart.
func convs(first, n int) []cozetest.Conversation {
	out := make([]cozetest.Conversation, n)
	for i := range out {
		out[i] = cozetest.Conversation{
			ID:        strconv.Itoa(first + i),
			BotID:     bot,
			CreatedAt: listEpoch.Add(time.Duration(i) * time.Minute),
		}
	}
	return out
}

func TestListPagesInOrder(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(100, 5)...) // 100..104
	tie := listEpoch.Add(2 * time.Minute)  // as 102: ties break by id as a number
	srv.AddConversations(
		cozetest.Conversation{ID: "99", BotID: bot, CreatedAt: tie},
		cozetest.Conversation{ID: "1000", BotID: bot, CreatedAt: tie},
		cozetest.Conversation{ID: "500", BotID: "7379996104798000002", CreatedAt: listEpoch}, // another bot
		cozetest.Conversation{ID: "501", BotID: bot, ConnectorID: cozetest.ConnectorChatSDK}, // another channel
	)
	asc := []string{"100", "101", "99", "102", "1000", "103", "104"}
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	for _, tt := range []struct {
		order string
		want  []string
	}{{"", asc}, {"&sort_order=ASC", asc}, {"&sort_order=DESC", desc}} {
		var got []string
		for n, wantMore := range []bool{true, true, false} {
			ans := page(t, srv, "pat_x", fmt.Sprintf("page_size=3&page_num=%d%s", n+1, tt.order))
			if ans.Data.HasMore != wantMore {
				t.Errorf("%s page %d: has_more %v", tt.order, n+1, ans.Data.HasMore)
			}
			got = append(got, ans.ids()...)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("order %q: %v, want %v", tt.order, got, tt.want)
		}
	}
	if ans := page(t, srv, "pat_x", "page_size=3&page_num=4"); len(ans.ids()) != 0 || ans.Data.HasMore ||
		!strings.Contains(ans.Body, `"conversations":[]`) {
		t.Errorf("past the end: %s", ans.Body)
	}
	if ans := page(t, srv, "pat_x", ""); !slices.Equal(ans.ids(), asc) || ans.Data.HasMore {
		t.Errorf("default page size: %v %v", ans.ids(), ans.Data.HasMore)
	}
	if ans := page(t, srv, "pat_x", "page_size=7"); len(ans.ids()) != 7 || ans.Data.HasMore {
		t.Errorf("an exact page: %v %v", ans.ids(), ans.Data.HasMore)
	}
	if ans := page(t, srv, "pat_x", "page_size=6"); len(ans.ids()) != 6 || !ans.Data.HasMore {
		t.Errorf("one short: %v %v", ans.ids(), ans.Data.HasMore)
	}
	if got := srv.ListCalls(); got != 13 {
		t.Errorf("%d list calls", got)
	}
	if got := srv.Counts()[cozetest.AnswerListed]; got != 13 {
		t.Errorf("%d listed answers", got)
	}
	calls := srv.Calls()
	last := calls[len(calls)-1]
	if last.Method != http.MethodGet || last.Path != cozetest.ListPath || last.ID != "" ||
		last.Query != "bot_id="+bot+"&page_size=6" || last.Answer != cozetest.AnswerListed ||
		last.Identity != (cozetest.Identity{App: cozetest.StaticTokenApp}) {
		t.Errorf("recorded call %+v", last)
	}
}

func TestListReportsAttributes(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	created := time.Date(2026, 10, 2, 3, 4, 5, 600_000_000, time.UTC)
	srv.AddConversations(
		cozetest.Conversation{ID: "7379996104798150001", BotID: bot, CreatedAt: created,
			UpdatedAt: created.Add(time.Hour), Meta: map[string]string{"uid": "u-1"}},
		cozetest.Conversation{ID: "7379996104798150002", BotID: bot, CreatedAt: created.Add(time.Second)},
	)
	ans := page(t, srv, "pat_x", "")
	if len(ans.Header) != 32 || ans.Header != ans.Detail.LogID {
		t.Errorf("log id %q in the header, %q in the body", ans.Header, ans.Detail.LogID)
	}
	if len(ans.Data.Conversations) != 2 {
		t.Fatalf("conversations %s", ans.Body)
	}
	c, d := ans.Data.Conversations[0], ans.Data.Conversations[1]
	if c.ID != "7379996104798150001" || c.Name == nil || *c.Name != "" || c.MetaData["uid"] != "u-1" ||
		c.ConnectorID != "1024" || c.CreatedAt != created.Unix() || c.UpdatedAt != created.Unix()+3600 ||
		c.CreatorID == "" || c.LastSectionID == "" {
		t.Errorf("first %+v", c)
	}
	if d.MetaData == nil || d.UpdatedAt != d.CreatedAt || d.CreatorID != c.CreatorID {
		t.Errorf("second %+v (creator of the first %s)", d, c.CreatorID)
	}
	if !strings.Contains(ans.Body, `"id":"7379996104798150001"`) || !strings.Contains(ans.Body, `"meta_data":{}`) {
		t.Errorf("body %s", ans.Body)
	}
	all := srv.Conversations()
	if len(all) != 2 || all[0].ConnectorID != "1024" || !all[1].UpdatedAt.Equal(all[1].CreatedAt) {
		t.Errorf("Conversations %+v", all)
	}
	all[0].Meta["uid"] = "changed"
	if srv.Conversations()[0].Meta["uid"] != "u-1" {
		t.Error("Conversations shares its maps")
	}
}

// TestListPagesShiftAfterDelete shows why a client must list first: page 2
// after deleting page 1 skips what page 2 held.
func TestListPagesShiftAfterDelete(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(200, 6)...)
	first := page(t, srv, "pat_x", "page_size=2&page_num=1")
	if !slices.Equal(first.ids(), []string{"200", "201"}) {
		t.Fatalf("page 1: %v", first.ids())
	}
	for _, id := range first.ids() {
		if status, code := rawDelete(t, srv, "pat_x", id); status != http.StatusOK || code != 0 {
			t.Fatalf("delete %s: %d %d", id, status, code)
		}
	}
	if second := page(t, srv, "pat_x", "page_size=2&page_num=2"); !slices.Equal(second.ids(), []string{"204", "205"}) ||
		second.Data.HasMore {
		t.Errorf("page 2 after the deletes: %v %v", second.ids(), second.Data.HasMore)
	}
	if again := page(t, srv, "pat_x", "page_size=2&page_num=1"); !slices.Equal(again.ids(), []string{"202", "203"}) ||
		!again.Data.HasMore {
		t.Errorf("page 1 after the deletes: %v", again.ids())
	}
	if n := len(srv.Conversations()); n != 4 {
		t.Errorf("%d conversations left", n)
	}
}

func TestListShowsOnlyTheCallersOwn(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	alice := cozetest.Identity{App: appID, Session: "alice"}
	all := convs(300, 8)
	all[0].Owner, all[1].Owner = alice, alice
	all[2].Owner = cozetest.Identity{App: appID, Session: "bob"}
	all[4].Owner = cozetest.Identity{App: appID}                       // the app, no session
	all[5].Owner = cozetest.Identity{App: cozetest.StaticTokenApp}     // a static token
	all[6].Owner = cozetest.Identity{App: "another-app", Session: "x"} // nobody here
	srv.AddConversations(all...)
	srv.SetOwner(appID, "bob", "303") // SetOwner after adding counts too
	// 307 has no owner: everyone sees it.

	tokens := map[string]string{
		"alice":  mint(t, srv, clk, "alice", defaultBody).AccessToken,
		"bob":    mint(t, srv, clk, "bob", defaultBody).AccessToken,
		"app":    mint(t, srv, clk, "", defaultBody).AccessToken,
		"static": "pat_x",
	}
	want := map[string][]string{
		"alice":  {"300", "301", "307"},
		"bob":    {"302", "303", "307"},
		"app":    {"304", "307"},
		"static": {"305", "307"},
	}
	creators := map[string]string{}
	for who, tok := range tokens {
		ans := page(t, srv, tok, "")
		if !slices.Equal(ans.ids(), want[who]) {
			t.Errorf("%s sees %v, want %v", who, ans.ids(), want[who])
		}
		creators[who] = ans.Data.Conversations[0].CreatorID
		if strings.Contains(ans.Body, "alice") || strings.Contains(ans.Body, "bob") {
			t.Errorf("%s's answer names a session: %s", who, ans.Body)
		}
	}
	if len(creators) != 4 || creators["alice"] == creators["bob"] || creators["app"] == creators["alice"] {
		t.Errorf("creator ids %v", creators)
	}
	// Owners set by AddConversations are owners for DELETE too.
	if _, code := rawDelete(t, srv, tokens["bob"], "300"); code != cozetest.NotCreatorCode {
		t.Errorf("bob deletes alice's: code %d", code)
	}
	if got := srv.Conversations(); len(got) != 8 || got[3].Owner.Session != "bob" || got[0].Owner != alice {
		t.Errorf("Conversations %+v", got)
	}
}

func TestListConnectorFilter(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(400, 2)...)
	sdk := convs(410, 1)
	sdk[0].ConnectorID = cozetest.ConnectorChatSDK
	srv.AddConversations(sdk...)
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{"400", "401"}},
		{"connector_id=1024", []string{"400", "401"}},
		{"connector_id=999", []string{"410"}},
	} {
		if ans := page(t, srv, "pat_x", tt.query); !slices.Equal(ans.ids(), tt.want) {
			t.Errorf("%q: %v, want %v", tt.query, ans.ids(), tt.want)
		}
	}
	if ans := listAs(t, srv, "pat_x", "bot_id="+bot+"&connector_id=5"); ans.Code != 4000 ||
		ans.Msg != "invalid parameter: connector_id" {
		t.Errorf("connector 5: %d %q", ans.Code, ans.Msg)
	}
}

func TestListParameterErrors(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(500, 1)...)
	b := "bot_id=" + bot
	for _, tt := range []struct{ query, param string }{
		{"", "bot_id"},
		{"bot_id=&page_size=10", "bot_id"},
		{b + "&page_size=0", "page_size"},
		{b + "&page_size=51", "page_size"},
		{b + "&page_size=-1", "page_size"},
		{b + "&page_size=ten", "page_size"},
		{b + "&page_num=0", "page_num"},
		{b + "&page_num=x", "page_num"},
		{b + "&sort_order=asc", "sort_order"},
		{b + "&connector_id=1025", "connector_id"},
	} {
		ans := listAs(t, srv, "pat_x", tt.query)
		if ans.Status != http.StatusOK || ans.Code != 4000 || ans.Msg != "invalid parameter: "+tt.param ||
			ans.Header == "" || ans.Header != ans.Detail.LogID || strings.Contains(ans.Body, `"data"`) {
			t.Errorf("%q: %d %d %q", tt.query, ans.Status, ans.Code, ans.Msg)
		}
	}
	for _, q := range []string{"page_size=1", "page_size=50", "page_num=1000", "page_size="} {
		page(t, srv, "pat_x", q)
	}
	if got := srv.Counts()[cozetest.AnswerInvalidPath]; got != 10 {
		t.Errorf("%d invalid answers", got)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+cozetest.ListPath, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if srv.ListCalls() != 14 {
		t.Errorf("%d list calls", srv.ListCalls())
	}
}

func TestListAuthErrors(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithToken("pat_good"))
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(600, 1)...)
	q := "bot_id=" + bot
	for _, tt := range []struct{ who, token, query string }{
		{"a wrong token", "pat_bad", q},
		{"no token", "", q},
		{"a wrong token, bad parameters", "pat_bad", ""}, // the token is checked first
	} {
		if ans := listAs(t, srv, tt.token, tt.query); ans.Status != http.StatusOK || ans.Code != 4100 {
			t.Errorf("%s: %d %d", tt.who, ans.Status, ans.Code)
		}
	}
	srv.SetAuthDown(true)
	if ans := listAs(t, srv, "pat_good", q); ans.Code != 4100 {
		t.Errorf("auth outage: %d", ans.Code)
	}
	srv.SetAuthDown(false)
	page(t, srv, "pat_good", "")

	jwtSrv, _ := jwtServer(t)
	if ans := listAs(t, jwtSrv, "czs_unknown", q); ans.Code != 4100 {
		t.Errorf("unknown access token: %d", ans.Code)
	}
	for _, c := range srv.Calls()[:4] {
		if c.Answer != cozetest.AnswerUnauth || c.Identity != (cozetest.Identity{}) {
			t.Errorf("call %+v", c)
		}
	}
}

func TestListFaults(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithSlowDelay(20*time.Millisecond), cozetest.WithRetryAfter(3))
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(700, 3)...)
	srv.ScriptList(cozetest.InternalError, cozetest.SystemLimit, cozetest.AuthInvalid, cozetest.BadParameter,
		cozetest.NotFound, cozetest.RateLimited, cozetest.RateLimitedRetryAfter, cozetest.BadGateway, cozetest.Slow)
	q := "bot_id=" + bot
	for _, tt := range []struct {
		fault  cozetest.Fault
		status int
		code   int64
	}{
		{cozetest.InternalError, 200, 5000},
		{cozetest.SystemLimit, 200, 4009},
		{cozetest.AuthInvalid, 200, 4100},
		{cozetest.BadParameter, 200, 4000},
		{cozetest.NotFound, 200, 4002},
		{cozetest.RateLimited, 429, 0},
		{cozetest.RateLimitedRetryAfter, 429, 4020},
		{cozetest.BadGateway, 502, 0},
		{cozetest.Slow, 200, 5000},
	} {
		ans := listAs(t, srv, "pat_x", q)
		if ans.Status != tt.status || ans.Code != tt.code || len(ans.Data.Conversations) != 0 {
			t.Errorf("%s: %d %d %s", tt.fault, ans.Status, ans.Code, ans.Body)
		}
	}
	srv.ScriptList(cozetest.ConnReset, cozetest.LostAnswer)
	for _, f := range []cozetest.Fault{cozetest.ConnReset, cozetest.LostAnswer} {
		if _, err := tryList(srv, "pat_x", q); err == nil {
			t.Errorf("%s: no error", f)
		}
	}
	if ans := page(t, srv, "pat_x", ""); len(ans.ids()) != 3 {
		t.Errorf("after the script: %v", ans.ids())
	}

	srv.SetFaults(map[cozetest.Fault]float64{cozetest.InternalError: 1})
	if ans := listAs(t, srv, "pat_x", q); ans.Code != 5000 {
		t.Errorf("random 5000: %d", ans.Code)
	}
	// Faults of one conversation do not touch a list.
	srv.SetFaults(map[cozetest.Fault]float64{cozetest.NotFound: 0.5, cozetest.LostAnswer: 0.5})
	for range 4 {
		page(t, srv, "pat_x", "")
	}
	if n := len(srv.Deletions()); n != 0 {
		t.Errorf("%d deletions by lists", n)
	}
	counts := srv.Counts()
	if counts[string(cozetest.InternalError)] != 2 || counts[string(cozetest.LostAnswer)] != 1 ||
		counts[cozetest.AnswerListed] != 5 || srv.ListCalls() != 17 {
		t.Errorf("counts %v, %d list calls", counts, srv.ListCalls())
	}
}

func TestRefuseDeleteKeepsItListed(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(800, 4)...)
	srv.RefuseDelete("800", "801", "802")
	srv.Script("801", cozetest.LostAnswer) // a refused id is not deleted even so
	srv.SetOwner("another-app", "", "802") // the creator check comes first
	for _, tt := range []struct {
		id   string
		code int64
	}{{"800", 4002}, {"800", 4002}, {"801", 4002}, {"802", cozetest.NotCreatorCode}, {"803", 0}} {
		if status, code := rawDelete(t, srv, "pat_x", tt.id); status != http.StatusOK || code != tt.code {
			t.Errorf("delete %s: %d %d, want %d", tt.id, status, code, tt.code)
		}
	}
	if ans := page(t, srv, "pat_x", ""); !slices.Equal(ans.ids(), []string{"800", "801"}) {
		t.Errorf("listed %v", ans.ids()) // 802 is another's: not listed to pat_x
	}
	if n := len(srv.Deletions()); n != 1 || srv.Counts()[cozetest.AnswerRefused] != 3 {
		t.Errorf("%d deletions, counts %v", n, srv.Counts())
	}
	srv.AllowDelete("800")
	if _, code := rawDelete(t, srv, "pat_x", "800"); code != 0 {
		t.Errorf("after AllowDelete: code %d", code)
	}
	if ans := page(t, srv, "pat_x", ""); !slices.Equal(ans.ids(), []string{"801"}) {
		t.Errorf("listed %v", ans.ids())
	}
}

func TestListRateLimited(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithRateLimit(5, 5))
	t.Cleanup(srv.Close)
	srv.AddConversations(convs(900, 2)...)
	limited := 0
	for range 20 {
		ans := listAs(t, srv, "pat_x", "bot_id="+bot)
		if ans.Status == http.StatusTooManyRequests && ans.Code == 4020 {
			limited++
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 back-to-back list calls limited at 5/s burst 5", limited)
	}
	if got := srv.Counts()[cozetest.AnswerLimited]; got != int64(limited) {
		t.Errorf("%d limited in the counts, %d seen", got, limited)
	}
	// Lists and deletes draw on one limit.
	srv.SetRateLimit(0.01, 1)
	if status, _ := rawDelete(t, srv, "pat_x", "900"); status != http.StatusOK {
		t.Errorf("delete: %d", status)
	}
	if ans := listAs(t, srv, "pat_x", "bot_id="+bot); ans.Status != http.StatusTooManyRequests {
		t.Errorf("list after the delete took the burst: %d", ans.Status)
	}
}
