package callback_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
)

// A receiver checks the signature before it trusts a callback, and
// deduplicates on the Idempotency-Key, since delivery is at least once.
// The secret is the workers' COZE_ERASER_CALLBACK_SECRET.
func ExampleVerify() {
	secret := []byte("shared-secret")
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		// Five minutes either way tolerates clock skew and refuses replays.
		if err := callback.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var s callback.Summary
		if err := json.Unmarshal(body, &s); err != nil {
			http.Error(w, "not a summary", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "accepted %s (key %s): deleted=%d not_found=%d failed=%d",
			s.Batch, r.Header.Get(callback.HeaderIdempotencyKey), s.Deleted, s.NotFound, s.Failed)
	})

	// What a worker sends, signed now.
	body := []byte(`{"batch":"gdpr-118","completion":1,"total":1834,"deleted":1802,"not_found":30,"failed":2}`)
	post := func(body []byte, signature string, ts int64) {
		req := httptest.NewRequest(http.MethodPost, "/hooks/erasure", strings.NewReader(string(body)))
		req.Header.Set(callback.HeaderIdempotencyKey, "gdpr-118:1")
		req.Header.Set(callback.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(callback.HeaderSignature, signature)
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	now := time.Now().Unix()
	post(body, callback.Sign(secret, now, body), now)

	// A body changed on the way, or signed with another secret, is refused.
	post([]byte(strings.Replace(string(body), `"failed":2`, `"failed":0`, 1)), callback.Sign(secret, now, body), now)
	// Output:
	// 200 accepted gdpr-118 (key gdpr-118:1): deleted=1802 not_found=30 failed=2
	// 401 callback: signature does not match
}
