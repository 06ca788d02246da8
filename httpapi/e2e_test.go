package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/worker"
)

// TestRequestCompletes is acceptance 1: a request of 5,000 ids, 10
// invalid, POSTed to the API, is deleted by a worker; its status, its
// report and its callback agree.
func TestRequestCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fake := cozetest.NewServer(cozetest.WithoutCallLog())
	t.Cleanup(fake.Close)
	var (
		mu        sync.Mutex
		callbacks []callback.Summary
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var s callback.Summary
		if err := json.Unmarshal(body, &s); err == nil {
			mu.Lock()
			callbacks = append(callbacks, s)
			mu.Unlock()
		}
	}))
	t.Cleanup(receiver.Close)
	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_e2e"), coze.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Redis: b.rdb, API: api, Concurrency: 50, PollInterval: 20 * time.Millisecond,
		ForwardInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	all := ids(5000, 7379996104798150001)
	for _, i := range []int{0, 7, 99, 500, 1234, 2000, 3333, 4000, 4998, 4999} {
		all[i] = "x" + all[i]
	}
	body := requestBody(t, map[string]any{"request_id": "e2e-1", "ids": all, "callback_url": receiver.URL + "/hook"})
	code, got := b.do("POST", "/v1/erasure-requests", b.write, body)
	var st RequestStatusBody
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusCreated || len(st.Rejected) != 10 || st.Total != 4990 {
		t.Fatalf("create: %d %.300s", code, got)
	}
	deadline := time.Now().Add(60 * time.Second)
	for st.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("not completed in 60 s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
		_, got = b.do("GET", "/v1/erasure-requests/e2e-1", b.read, "")
		if err := json.Unmarshal(got, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.Deleted != 4990 || st.Invalid != 10 || st.Pending != 0 || st.CompletedAt == nil {
		t.Errorf("status: %+v", st)
	}
	_, proof := b.do("GET", "/v1/erasure-requests/e2e-1/report", b.read, "", "Accept", "application/x-ndjson")
	if rows := bytes.Count(proof, []byte(`"outcome":"deleted"`)); rows != 4990 {
		t.Errorf("report: %d deleted rows, want 4990", rows)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(callbacks)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(callbacks) != 1 || callbacks[0].Batch != "e2e-1" || callbacks[0].Total != st.Total || callbacks[0].Deleted != st.Deleted ||
		callbacks[0].Invalid != st.Invalid || !callbacks[0].CompletedAt.Equal(*st.CompletedAt) {
		t.Errorf("callbacks %+v, want one agreeing with the status %+v", callbacks, st)
	}
	if n := len(fake.Deletions()); n != 4990 {
		t.Errorf("%d deletions at the API, want 4990", n)
	}
	// The replay creates nothing.
	if code, _ := b.do("POST", "/v1/erasure-requests", b.write, body); code != http.StatusOK || len(fake.Deletions()) != 4990 {
		t.Errorf("replay: %d", code)
	}
}

// RequestStatusBody is the status answer as a client reads it.
type RequestStatusBody struct {
	Status      string     `json:"status"`
	Total       int        `json:"total"`
	Deleted     int        `json:"deleted"`
	Pending     int        `json:"pending"`
	Invalid     int        `json:"invalid"`
	CompletedAt *time.Time `json:"completed_at"`
	Rejected    []struct {
		Index int `json:"index"`
	} `json:"rejected"`
}
