package coze_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// failingSource fails to give a token with err.
type failingSource struct{ err error }

func (f failingSource) Token() (string, error) { return "", f.err }

// TestTokenErrorKeepsItsClass: a call whose token could not be had takes
// the token error's class (a token endpoint's 500 is transient, not an auth
// failure that would pause the worker), and auth when the error has none.
func TestTokenErrorKeepsItsClass(t *testing.T) {
	t.Parallel()
	api := cozetest.NewServer()
	defer api.Close()
	for _, tt := range []struct {
		err  error
		want coze.Class
	}{
		{&coze.TokenError{Status: 500, Code: "internal_error", Message: "try later"}, coze.ClassTransient},
		{&coze.TokenError{Status: 401, Code: "invalid_client", Message: "bad kid"}, coze.ClassAuth},
		{&coze.TokenError{Status: 400, Code: "unsupported_grant_type"}, coze.ClassPermanent},
		{errors.New("the token file is missing"), coze.ClassAuth},
		{&coze.TokenError{Status: 302, Message: "moved"}, coze.ClassAuth},
		{&coze.TokenError{Status: 200, Err: errors.New("no access_token")}, coze.ClassAuth},
		{fmt.Errorf("coze: waiting for an access token: %w", context.DeadlineExceeded), coze.ClassTransient},
		{fmt.Errorf("coze: waiting for an access token: %w", context.Canceled), coze.ClassTransient},
	} {
		client, err := coze.NewClient(api.URL, failingSource{tt.err})
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.DeleteConversation(context.Background(), "7379996104798150001")
		if res.Class != tt.want || err == nil {
			t.Errorf("token error %v: class %s (err %v), want %s", tt.err, res.Class, err, tt.want)
		}
	}
	if n := len(api.Calls()); n != 0 {
		t.Errorf("%d calls reached the API without a token", n)
	}
}
