package coze_test

import (
	"context"
	"crypto/rsa"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// TestJWTAppAgainstTheFake: the client's JWT app and the fake's token
// endpoint agree: each session mints once however many callers start at
// once, deletes the conversations it owns, renews before the fake's
// lifetime ends (no 4100), and gets "not found" for another session's.
func TestJWTAppAgainstTheFake(t *testing.T) {
	t.Parallel()
	key := testKeys()[0]
	const app, kid = "1127900106117", "kid-1"
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	api := cozetest.NewServer(cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: &key.PublicKey}),
		cozetest.WithTokenLifetime(time.Minute), cozetest.WithClock(clock))
	defer api.Close()
	path := filepath.Join(t.TempDir(), "app.pem")
	writeKey(t, path, pkcs8PEM(t, key))
	jwtApp, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: api.URL, AppID: app, KeyID: kid, PrivateKeyFile: path, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sessions := []string{"user-1", "user-2", "user-3"}
	var ids []string
	for i, s := range sessions {
		for j := range 4 {
			id := fmt.Sprintf("73799961047981%05d", i*10+j)
			api.SetOwner(app, s, id)
			ids = append(ids, id)
		}
	}
	clients := map[string]*coze.Client{}
	for _, s := range sessions {
		c, err := coze.NewClient(api.URL, jwtApp.Session(s))
		if err != nil {
			t.Fatal(err)
		}
		clients[s] = c
	}

	// Every id deleted by its own session, all sessions at once, twice
	// per id: the second call is "already gone", never auth.
	var wg sync.WaitGroup
	for i, id := range ids {
		owner := sessions[i/4]
		for range 2 {
			wg.Go(func() {
				res, _ := clients[owner].DeleteConversation(context.Background(), id)
				if res.Class != coze.ClassDeleted && res.Class != coze.ClassNotFound {
					t.Errorf("%s as %s: class %s code %d", id, owner, res.Class, res.Code)
				}
			})
		}
	}
	wg.Wait()
	for _, s := range sessions {
		if n := api.Mints(app, s); n != 1 {
			t.Errorf("session %s minted %d times for concurrent first use, want 1", s, n)
		}
	}

	// Another session's conversation: not found, as Coze answers a caller
	// that did not create it; the owner can still delete it.
	api.SetOwner(app, "user-2", "7379996104798199999")
	if res, _ := clients["user-1"].DeleteConversation(context.Background(), "7379996104798199999"); res.Class != coze.ClassNotFound {
		t.Errorf("another session's conversation: class %s code %d, want not_found", res.Class, res.Code)
	}
	if res, _ := clients["user-2"].DeleteConversation(context.Background(), "7379996104798199999"); res.Class != coze.ClassDeleted {
		t.Errorf("the owner's delete: class %s code %d", res.Class, res.Code)
	}

	// 55 s on, inside the last tenth of the 60 s lifetime: the call goes
	// with the still-valid token (no 4100) while a new one is minted in
	// the background.
	mu.Lock()
	now = now.Add(55 * time.Second)
	mu.Unlock()
	api.SetOwner(app, "user-3", "7379996104798188888")
	if res, _ := clients["user-3"].DeleteConversation(context.Background(), "7379996104798188888"); res.Class != coze.ClassDeleted {
		t.Errorf("after 55 s: class %s code %d, want deleted by a renewed token", res.Class, res.Code)
	}
	waitForCond(t, "user-3's background renewal", func() bool { return api.Mints(app, "user-3") == 2 })
}

// TestRevokedTokenIsMintedAgain: a token the API refuses before its expiry
// (revoked) is dropped, so the next call mints a new one instead of sending
// the dead token until it would have expired.
func TestRevokedTokenIsMintedAgain(t *testing.T) {
	t.Parallel()
	key := testKeys()[0]
	const app, kid = "1127900106118", "kid-1"
	api := cozetest.NewServer(cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: &key.PublicKey}))
	defer api.Close()
	path := filepath.Join(t.TempDir(), "app.pem")
	writeKey(t, path, pkcs8PEM(t, key))
	jwtApp, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: api.URL, AppID: app, KeyID: kid, PrivateKeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	client, err := coze.NewClient(api.URL, jwtApp.Session("user-1"))
	if err != nil {
		t.Fatal(err)
	}
	api.SetOwner(app, "user-1", "7379996104798177001", "7379996104798177002", "7379996104798177003")
	if res, _ := client.DeleteConversation(context.Background(), "7379996104798177001"); res.Class != coze.ClassDeleted {
		t.Fatalf("first delete: %s", res.Class)
	}
	api.RevokeTokens(app)
	if res, _ := client.DeleteConversation(context.Background(), "7379996104798177002"); res.Class != coze.ClassAuth {
		t.Fatalf("with the revoked token: %s, want auth", res.Class)
	}
	if res, _ := client.DeleteConversation(context.Background(), "7379996104798177002"); res.Class != coze.ClassDeleted {
		t.Errorf("after the refusal: %s, want deleted with a new token", res.Class)
	}
	if n := api.Mints(app, "user-1"); n != 2 {
		t.Errorf("%d mints, want 2: one before and one after the revocation", n)
	}
}

// TestListAgainstTheFake: each session of an app lists exactly its own
// conversations of a bot, page by page in creation order, and a list that
// reads every page before deleting sees every one.
func TestListAgainstTheFake(t *testing.T) {
	t.Parallel()
	key := testKeys()[0]
	const app, kid, bot = "1127900106117", "kid-1", "7379996104700000001"
	api := cozetest.NewServer(cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: &key.PublicKey}))
	defer api.Close()
	path := filepath.Join(t.TempDir(), "app.pem")
	writeKey(t, path, pkcs8PEM(t, key))
	jwtApp, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: api.URL, AppID: app, KeyID: kid, PrivateKeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1_700_000_000, 0)
	owned := map[string]int{"alice": 120, "bob": 30}
	for s, n := range owned {
		for i := range n {
			api.AddConversations(cozetest.Conversation{ID: fmt.Sprintf("73799961047%s%06d", map[string]string{"alice": "1", "bob": "2"}[s], i),
				BotID: bot, CreatedAt: base.Add(time.Duration(i) * time.Second), Owner: cozetest.Identity{App: app, Session: s}})
		}
	}
	for s, n := range owned {
		c, err := coze.NewClient(api.URL, jwtApp.Session(s))
		if err != nil {
			t.Fatal(err)
		}
		var got []coze.Conversation
		for page := 1; ; page++ {
			p, _, err := c.ListConversations(context.Background(), coze.ListQuery{BotID: bot, Page: page})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Conversations...)
			if !p.HasMore {
				break
			}
		}
		if len(got) != n {
			t.Errorf("%s listed %d, want %d", s, len(got), n)
		}
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.Before(got[i-1].CreatedAt) {
				t.Errorf("%s: not in creation order at %d", s, i)
				break
			}
		}
	}
}
