package coze_test

import (
	"context"
	"fmt"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// Delete a conversation and read what the answer means. The fake API stands
// in for https://api.coze.cn here.
func ExampleClient_DeleteConversation() {
	api := cozetest.NewServer()
	defer api.Close()
	api.Script("7379996104798150002", cozetest.RateLimitedRetryAfter)

	client, err := coze.NewClient(api.URL, coze.StaticToken("pat_example"))
	if err != nil {
		panic(err)
	}
	for _, id := range []string{"7379996104798150001", "7379996104798150001", "7379996104798150002"} {
		res, err := client.DeleteConversation(context.Background(), id)
		fmt.Printf("%s: class=%s code=%d retry_after=%v logid_len=%d failed=%v\n",
			id, res.Class, res.Code, res.RetryAfter, len(res.LogID), err != nil)
	}
	// Output:
	// 7379996104798150001: class=deleted code=0 retry_after=0s logid_len=32 failed=false
	// 7379996104798150001: class=not_found code=4002 retry_after=0s logid_len=32 failed=true
	// 7379996104798150002: class=rate_limited code=4020 retry_after=1s logid_len=32 failed=true
}
