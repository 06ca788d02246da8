package coze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Bounds and defaults of a [ListQuery].
const (
	// MaxPageSize is the largest page the list endpoint serves.
	MaxPageSize = 50
	// ConnectorAPI is the connector of conversations created through the
	// API, the list endpoint's default; ConnectorChatSDK is the Chat SDK's.
	ConnectorAPI     = "1024"
	ConnectorChatSDK = "999"
	// listMaxBodyBytes bounds a list answer: fifty conversations with their
	// metadata (up to 16 keys of 512 characters each) fit in it many times.
	listMaxBodyBytes = 4 << 20
)

// Order is the order of a list, by creation time.
type Order string

// The orders of [ListQuery.Order].
const (
	Ascending  Order = "ASC"
	Descending Order = "DESC"
)

// ListQuery asks for one page of a bot's conversations that the caller
// created (with session isolation: that the caller's session created).
type ListQuery struct {
	// BotID is the bot whose conversations are listed; required.
	BotID string
	// ConnectorID is the channel: [ConnectorAPI] (the default) or
	// [ConnectorChatSDK].
	ConnectorID string
	// Page is the 1-based page number (default 1). The endpoint pages by
	// number, so deleting conversations between two pages shifts the
	// later ones to earlier pages: list every page first, then delete.
	Page int
	// PageSize is 1 to [MaxPageSize] (default MaxPageSize).
	PageSize int
	// Order is by creation time: [Ascending] (the default) or [Descending].
	Order Order
}

// Conversation is one conversation of a list page.
type Conversation struct {
	ID          string
	Name        string
	Meta        map[string]string
	CreatorID   string
	ConnectorID string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Page is one page of a list.
type Page struct {
	Conversations []Conversation
	// HasMore is true when a later page holds more conversations.
	HasMore bool
}

// ErrBadQuery is wrapped by the error of a [ListQuery] that breaks a rule
// (no bot, a page size out of range): no call is made.
var ErrBadQuery = errors.New("coze: bad list query")

// check fills q's defaults and refuses what the endpoint would.
func (q *ListQuery) check() error {
	if q.ConnectorID == "" {
		q.ConnectorID = ConnectorAPI
	}
	if q.Page == 0 {
		q.Page = 1
	}
	if q.PageSize == 0 {
		q.PageSize = MaxPageSize
	}
	if q.Order == "" {
		q.Order = Ascending
	}
	if err := ValidateBotID(q.BotID); err != nil {
		return err
	}
	if err := ValidateConnectorID(q.ConnectorID); err != nil {
		return err
	}
	switch {
	case q.Page < 1:
		return fmt.Errorf("%w: page %d: pages are numbered from 1", ErrBadQuery, q.Page)
	case q.PageSize < 1 || q.PageSize > MaxPageSize:
		return fmt.Errorf("%w: page size %d: want 1 to %d", ErrBadQuery, q.PageSize, MaxPageSize)
	case q.Order != Ascending && q.Order != Descending:
		return fmt.Errorf("%w: order %q: want ASC or DESC", ErrBadQuery, q.Order)
	}
	return nil
}

// ValidateBotID checks a bot id as the list endpoint takes it: the bot's
// numeric id. The error wraps [ErrBadQuery] and quotes the id safely.
func ValidateBotID(id string) error {
	if !numericID(id) {
		return fmt.Errorf("%w: bot id %q: want the bot's numeric id (1 to 32 digits)", ErrBadQuery, shorten(id))
	}
	return nil
}

// ValidateConnectorID checks a connector id as the list endpoint takes it:
// [ConnectorAPI] or [ConnectorChatSDK].
func ValidateConnectorID(id string) error {
	if id != ConnectorAPI && id != ConnectorChatSDK {
		return fmt.Errorf("%w: connector id %q: want %s (API) or %s (Chat SDK)", ErrBadQuery, shorten(id), ConnectorAPI, ConnectorChatSDK)
	}
	return nil
}

// shorten keeps the first 64 bytes of text quoted in an error.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// numericID reports whether s is a plausible Coze id: 1 to 32 digits.
func numericID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ListConversations reads one page of q. The result is classified as a
// delete's is, with [ClassDeleted] standing for success (code 0); the
// error is an [*Error] whenever the call did not succeed, or when a
// successful answer's data cannot be read (then the class is unknown).
func (c *Client) ListConversations(ctx context.Context, q ListQuery) (Page, Result, error) {
	if err := q.check(); err != nil {
		return Page{}, Result{Class: ClassPermanent, Err: err}, err
	}
	v := url.Values{}
	v.Set("bot_id", q.BotID)
	v.Set("connector_id", q.ConnectorID)
	v.Set("page_num", strconv.Itoa(q.Page))
	v.Set("page_size", strconv.Itoa(q.PageSize))
	v.Set("sort_order", string(q.Order))
	start := time.Now()
	res, body := c.send(ctx, http.MethodGet, c.base.String()+"/v1/conversations?"+v.Encode(), listMaxBodyBytes)
	res.Duration = time.Since(start)
	op := fmt.Sprintf("list conversations of bot %s, page %d", q.BotID, q.Page)
	if res.Class != ClassDeleted {
		return Page{}, res, &Error{Op: op, Result: res}
	}
	page, err := parsePage(body)
	if err != nil {
		res.Class, res.Err = ClassUnknown, err
		return Page{}, res, &Error{Op: op, Result: res}
	}
	return page, res, nil
}

// listAnswer is the data of a list answer. Ids come as strings; numbers are
// accepted too, as some of the API's answers send them.
type listAnswer struct {
	Data *struct {
		Conversations []struct {
			ID            flexString        `json:"id"`
			Name          string            `json:"name"`
			Meta          map[string]string `json:"meta_data"`
			CreatorID     flexString        `json:"creator_id"`
			ConnectorID   flexString        `json:"connector_id"`
			CreatedAt     int64             `json:"created_at"`
			UpdatedAt     int64             `json:"updated_at"`
			LastSectionID flexString        `json:"last_section_id"`
		} `json:"conversations"`
		HasMore bool `json:"has_more"`
	} `json:"data"`
}

func parsePage(body []byte) (Page, error) {
	var a listAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Page{}, fmt.Errorf("list answer: %w", err)
	}
	if a.Data == nil {
		return Page{}, errors.New("list answer without data")
	}
	p := Page{HasMore: a.Data.HasMore, Conversations: make([]Conversation, 0, len(a.Data.Conversations))}
	for i, c := range a.Data.Conversations {
		if !numericID(string(c.ID)) {
			return Page{}, fmt.Errorf("list answer: conversation %d: id %q is not a conversation id", i, describeBody([]byte(c.ID)))
		}
		p.Conversations = append(p.Conversations, Conversation{
			ID: string(c.ID), Name: c.Name, Meta: c.Meta, CreatorID: string(c.CreatorID), ConnectorID: string(c.ConnectorID),
			CreatedAt: time.Unix(c.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(c.UpdatedAt, 0).UTC(),
		})
	}
	return p, nil
}

// flexString reads a JSON string or number as a string.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}
