package cozetest

// This file is the fake's list endpoint, GET /v1/conversations, as
// ../shared/coze-api/NOTES.md ("Related endpoints") and oauth-jwt.md
// ("Listing (for discovery)") describe the real one: conversations of one bot
// and channel, only those the caller may see, paged by page number over the
// current list, so deleting between pages shifts later items to earlier
// pages. It also holds the conversations' attributes and the RefuseDelete
// switch.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// ListPath is the list endpoint's path.
const ListPath = "/v1/conversations"

// Connector ids: the channels the list endpoint serves.
const (
	// ConnectorAPI is the API channel, the list's default connector_id.
	ConnectorAPI = "1024"
	// ConnectorChatSDK is the Chat SDK channel.
	ConnectorChatSDK = "999"
)

// MaxPageSize is the largest page_size the list endpoint allows, and the
// default.
const MaxPageSize = 50

// Conversation is a conversation the fake knows, with the attributes the list
// endpoint reports.
type Conversation struct {
	ID    string
	BotID string
	// ConnectorID is the channel it was created on; "" means [ConnectorAPI].
	ConnectorID string
	// CreatedAt orders the list; the zero time means when it was added.
	CreatedAt time.Time
	// UpdatedAt is reported as is; the zero time means CreatedAt.
	UpdatedAt time.Time
	// Meta is the meta_data set at creation.
	Meta map[string]string
	// Owner is who created it; the zero Identity means no owner: anyone may
	// see and delete it. See [Fake.SetOwner].
	Owner Identity
}

// listState is the fake's list side; it is guarded by Fake.mu.
type listState struct {
	convs   map[string]Conversation // by id; Owner is kept in oauth.owners
	refused map[string]bool
	script  []Fault
	calls   int
	// generation counts the changes that may change what a list shows
	// (conversations added, deleted, or given an owner); view caches the
	// last sorted list made, valid for one generation, so that paging a
	// bot of 100,000 conversations costs a page per call, not a sort.
	generation int
	view       listView
}

// listView is one caller's sorted conversations of one bot and connector.
type listView struct {
	who                Identity
	botID, connectorID string
	desc               bool
	generation         int
	match              []Conversation
}

// changedLocked marks a change that may change a listing. Called with f.mu
// held.
func (f *Fake) changedLocked() { f.list.generation++ }

func newListState() listState {
	return listState{convs: map[string]Conversation{}, refused: map[string]bool{}}
}

// AddConversations makes conversations known to the list endpoint, or
// replaces the attributes of known ones. An Owner is recorded as
// [Fake.SetOwner] does (so a DELETE by anyone else answers
// [NotCreatorCode]); a zero Owner leaves any owner SetOwner gave alone. An
// id the fake already deleted stays deleted, and unlisted. It panics on an id
// DELETE would refuse as not a conversation id.
func (f *Fake) AddConversations(cs ...Conversation) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		if !validID(c.ID) {
			panic(fmt.Sprintf("cozetest: conversation id %q is not a positive decimal int64", c.ID))
		}
		if c.ConnectorID == "" {
			c.ConnectorID = ConnectorAPI
		}
		if c.CreatedAt.IsZero() {
			c.CreatedAt = now
		}
		if c.UpdatedAt.IsZero() {
			c.UpdatedAt = c.CreatedAt
		}
		c.Meta = maps.Clone(c.Meta)
		if c.Owner != (Identity{}) {
			f.oauth.owners[c.ID] = c.Owner
		}
		c.Owner = Identity{}
		f.list.convs[c.ID] = c
	}
	f.changedLocked()
}

// Conversations returns the conversations added and not deleted, in
// ascending creation order (ties by id), each with its current owner.
func (f *Fake) Conversations() []Conversation {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Conversation, 0, len(f.list.convs))
	for id, c := range f.list.convs {
		if _, gone := f.deleted[id]; gone {
			continue
		}
		c.Owner = f.oauth.owners[id]
		c.Meta = maps.Clone(c.Meta)
		out = append(out, c)
	}
	slices.SortFunc(out, compareConversations)
	return out
}

// RefuseDelete makes a DELETE of ids answer code 4002 ("conversation not
// found"), HTTP 200, without deleting them, as for a conversation the
// account has no permission on: they stay listed. The creator check comes
// first: a caller that is not the creator still gets [NotCreatorCode].
func (f *Fake) RefuseDelete(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.list.refused[id] = true
	}
}

// AllowDelete undoes [Fake.RefuseDelete] for ids.
func (f *Fake) AllowDelete(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.list.refused, id)
	}
}

// ScriptList queues answers for the next list calls: they get these faults
// in order, before random faults and normal answers resume. [NotFound]
// answers 4002 and [LostAnswer] resets the connection as [ConnReset] does:
// a list deletes nothing, so the answer is all the caller loses.
func (f *Fake) ScriptList(faults ...Fault) {
	f.mu.Lock()
	f.list.script = append(f.list.script, faults...)
	f.mu.Unlock()
}

// ListCalls returns how many list calls the fake received (all answers,
// faults included; not those refused for their method). They are in
// [Fake.Calls] with Method GET and Path [ListPath], and in [Fake.Counts].
func (f *Fake) ListCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list.calls
}

// listQuery is a list call's parameters.
type listQuery struct {
	botID, connectorID string
	pageNum, pageSize  int
	desc               bool
}

// parseListQuery reads and checks the list parameters; bad names the first
// parameter that breaks its rule ("" if none).
func parseListQuery(v url.Values) (q listQuery, bad string) {
	q = listQuery{botID: v.Get("bot_id"), connectorID: v.Get("connector_id"), pageNum: 1, pageSize: MaxPageSize}
	if q.botID == "" {
		return q, "bot_id"
	}
	switch q.connectorID {
	case "":
		q.connectorID = ConnectorAPI
	case ConnectorAPI, ConnectorChatSDK:
	default:
		return q, "connector_id"
	}
	var ok bool
	if q.pageNum, ok = intParam(v, "page_num", 1, 1, 1<<30); !ok {
		return q, "page_num"
	}
	if q.pageSize, ok = intParam(v, "page_size", MaxPageSize, 1, MaxPageSize); !ok {
		return q, "page_size"
	}
	switch v.Get("sort_order") {
	case "", "ASC":
	case "DESC":
		q.desc = true
	default:
		return q, "sort_order"
	}
	return q, ""
}

// intParam reads an integer parameter in [lo, hi]; absent or empty gives def.
func intParam(v url.Values, name string, def, lo, hi int) (int, bool) {
	s := v.Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= lo && n <= hi
}

// listedConversation is one conversation as the list endpoint reports it.
type listedConversation struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	MetaData      map[string]string `json:"meta_data"`
	CreatorID     string            `json:"creator_id"`
	ConnectorID   string            `json:"connector_id"`
	CreatedAt     int64             `json:"created_at"`
	UpdatedAt     int64             `json:"updated_at"`
	LastSectionID string            `json:"last_section_id"`
}

// listData is a page of the list.
type listData struct {
	Conversations []listedConversation `json:"conversations"`
	HasMore       bool                 `json:"has_more"`
}

// listPage is a list call's answer; a refusal has no data.
type listPage struct {
	Code   int64     `json:"code"`
	Msg    string    `json:"msg"`
	Data   *listData `json:"data,omitempty"`
	Detail struct {
		LogID string `json:"logid"`
	} `json:"detail"`
}

// serveList answers GET /v1/conversations.
func (f *Fake) serveList(w http.ResponseWriter, r *http.Request) {
	call, ok := f.begin(w, r, http.MethodGet)
	if !ok {
		return
	}
	call.Query = r.URL.RawQuery
	q, bad := parseListQuery(r.URL.Query())
	page := f.decideList(&call, q, bad)
	f.answerList(w, r, &call, page, bad)
}

// decideList picks a list call's answer and, for a page, makes it from the
// conversations as they are now, under the lock.
func (f *Fake) decideList(call *Call, q listQuery, bad string) *listPage {
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := f.chooseList(call, bad)
	var page *listPage
	if answer == AnswerListed {
		page = f.pageLocked(call.Identity, q)
	}
	f.list.calls++
	f.recordLocked(call, answer)
	return page
}

// chooseList is choose for a list call: the same rate limit, token check
// and faults, with the parameters in place of the id. A random [NotFound]
// or [LostAnswer] is a fault of one conversation, not of a list: the call
// is answered normally. Called with f.mu held.
func (f *Fake) chooseList(call *Call, bad string) string {
	if f.limiter != nil && !f.limiter.Allow() {
		return AnswerLimited
	}
	who, ok := f.identify(call.Token)
	if f.authDown || !ok {
		return AnswerUnauth
	}
	call.Identity = who
	if bad != "" {
		return AnswerInvalidPath
	}
	if len(f.list.script) > 0 {
		fault := f.list.script[0]
		f.list.script = f.list.script[1:]
		return string(fault)
	}
	switch fault := f.randomFault(); fault {
	case "", NotFound, LostAnswer:
		return AnswerListed
	default:
		return string(fault)
	}
}

// pageLocked makes page q.pageNum of the conversations who may see. Called
// with f.mu held.
func (f *Fake) pageLocked(who Identity, q listQuery) *listPage {
	match := f.viewLocked(who, q)
	page := &listPage{Data: &listData{Conversations: []listedConversation{}}} // [] rather than null when empty
	from := min((q.pageNum-1)*q.pageSize, len(match))
	to := min(from+q.pageSize, len(match))
	for _, c := range match[from:to] {
		owner, owned := f.oauth.owners[c.ID]
		if !owned {
			owner = Identity{App: StaticTokenApp} // the account's own
		}
		meta := c.Meta
		if meta == nil {
			meta = map[string]string{}
		}
		page.Data.Conversations = append(page.Data.Conversations, listedConversation{
			ID:            c.ID,
			MetaData:      meta, // never written after AddConversations stored it
			CreatorID:     creatorID(owner),
			ConnectorID:   c.ConnectorID,
			CreatedAt:     c.CreatedAt.Unix(),
			UpdatedAt:     c.UpdatedAt.Unix(),
			LastSectionID: c.ID, // a section id of the fake's own: the conversation's
		})
	}
	page.Data.HasMore = to < len(match)
	return page
}

// viewLocked returns who's conversations of q's bot and connector, in q's
// order: the cached view when nothing changed since it was made. Called
// with f.mu held.
func (f *Fake) viewLocked(who Identity, q listQuery) []Conversation {
	v := &f.list.view
	if v.match != nil && v.who == who && v.botID == q.botID && v.connectorID == q.connectorID && v.desc == q.desc &&
		v.generation == f.list.generation {
		return v.match
	}
	match := []Conversation{}
	for id, c := range f.list.convs {
		if c.BotID != q.botID || c.ConnectorID != q.connectorID {
			continue
		}
		// Who may delete a conversation is who sees it: its creator, or
		// anyone when it has no owner.
		if _, gone := f.deleted[id]; gone || !f.mayDelete(id, who) {
			continue
		}
		match = append(match, c)
	}
	slices.SortFunc(match, compareConversations)
	if q.desc {
		slices.Reverse(match)
	}
	*v = listView{who: who, botID: q.botID, connectorID: q.connectorID, desc: q.desc, generation: f.list.generation, match: match}
	return match
}

// compareConversations orders by creation time, then by id as a number.
func compareConversations(a, b Conversation) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	// Valid ids have no leading zeros: the shorter is the smaller number.
	return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
}

// creatorID is a stable numeric user id for an identity. It is a hash, so a
// session name never appears in an answer.
func creatorID(who Identity) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(who.App + "\x00" + who.Session))
	return strconv.FormatUint(h.Sum64()>>1, 10) // 63 bits: fits an int64 as real ids do
}

// answerList writes a list call's answer: a page, or an error as DELETE
// answers it.
func (f *Fake) answerList(w http.ResponseWriter, r *http.Request, call *Call, page *listPage, bad string) {
	switch call.Answer {
	case AnswerListed:
		page.Detail.LogID = call.LogID
		w.Header().Set("X-Tt-Logid", call.LogID)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(page)
	case AnswerInvalidPath:
		// Not writeJSON: gosec's taint analysis follows bad from the query
		// into its Fprintf, though bad is always one of parseListQuery's
		// literals.
		refusal := &listPage{Code: 4000, Msg: "invalid parameter: " + bad}
		refusal.Detail.LogID = call.LogID
		w.Header().Set("X-Tt-Logid", call.LogID)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(refusal)
	case string(BadParameter):
		w.Header().Set("X-Tt-Logid", call.LogID)
		writeJSON(w, http.StatusOK, 4000, "invalid parameter", call.LogID)
	default: // the faults, the rate limit and 4100 answer as for a DELETE
		f.answer(w, r, call)
	}
}
