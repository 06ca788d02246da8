package main

import (
	"strings"
	"testing"
	"time"
)

// TestEnqueueOptionFlagsInFlagWords is issue 13, point 3: the rules of the
// schedule and due flags are the library's now (enqueue.CheckOptions), and
// the CLI still reports them before reaching Redis, naming its flags, not
// the library's options.
func TestEnqueueOptionFlagsInFlagWords(t *testing.T) {
	t.Parallel()
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	token := map[string]string{"COZE_API_TOKEN": "pat_options"}
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"enqueue", "1", "--at", soon, "--in", "1h"}, "give --at or --in, not both"},
		{nil, []string{"enqueue", "1", "--due", soon, "--due-in", "1h"}, "give --due or --due-in, not both"},
		{nil, []string{"enqueue", "1", "--in", "-1s"}, "--in -1s: must not be negative"},
		{nil, []string{"enqueue", "1", "--due-in", "-1h"}, "--due-in -1h0m0s: must not be negative"},
		{nil, []string{"enqueue", "1", "--ledger-ttl", "0s"}, "--ledger-ttl 0s: must be 1h0m0s to 87600h0m0s"},
		{nil, []string{"enqueue", "1", "--at", "tomorrow"}, `--at "tomorrow": not an RFC 3339 time`},
		{nil, []string{"enqueue", "1", "--due", "tomorrow"}, `--due "tomorrow": not an RFC 3339 time`},
		{token, []string{"run", "1", "--due", soon, "--due-in", "1h"}, "give --due or --due-in, not both"},
		{token, []string{"run", "1", "--due-in", "-1h"}, "--due-in -1h0m0s: must not be negative"},
		{token, []string{"run", "1", "--max-retry", "-1"}, "--max-retry -1: must be 0 to 1000"},
	} {
		res := runWithoutRedis(t, tt.env, tt.args...)
		first := strings.SplitN(res.stderr, "\n", 2)[0]
		if res.code != exitSetup || !strings.HasPrefix(first, "coze-eraser: "+tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tt.args, res.code, res.stderr, tt.want)
		}
		for _, word := range []string{"(In)", "DueIn", "due in", "delay", "max retry", "retention"} {
			if strings.Contains(first, word) {
				t.Errorf("%v: %q has the library's word %q, not the flag's", tt.args, first, word)
			}
		}
	}
}
