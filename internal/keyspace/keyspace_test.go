package keyspace_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// goKeys pairs each function or variable of the Lua prelude with the Go
// that builds the same key: name -> Go, given the arguments the test
// passes to the Lua (batch, bucket, id as needed).
var goKeys = map[string]func(ks keyspace.Keyspace, b string, k int, id string) string{
	"metaKey":        func(ks keyspace.Keyspace, b string, _ int, _ string) string { return ks.Batch(b) },
	"idsKey":         func(ks keyspace.Keyspace, b string, k int, _ string) string { return ks.BatchIDs(b, k) },
	"addersKey":      func(ks keyspace.Keyspace, b string, _ int, _ string) string { return ks.BatchAdders(b) },
	"listingsKey":    func(ks keyspace.Keyspace, b string, _ int, _ string) string { return ks.BatchListings(b) },
	"historyKey":     func(ks keyspace.Keyspace, b string, _ int, _ string) string { return ks.BatchHistory(b) },
	"unfedKey":       func(ks keyspace.Keyspace, b string, _ int, q string) string { return ks.BatchUnfed(b, q) },
	"feedKey":        func(ks keyspace.Keyspace, _ string, _ int, q string) string { return ks.Feed(q) },
	"feedsKey":       func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Feeds() },
	"failKey":        func(ks keyspace.Keyspace, b string, _ int, id string) string { return ks.Failure(b, id) },
	"failMember":     func(_ keyspace.Keyspace, b string, _ int, id string) string { return keyspace.FailureMember(b, id) },
	"failuresKey":    func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Failures() },
	"batchesKey":     func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Batches() },
	"openBatchesKey": func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.OpenBatches() },
	"sessionsKey":    func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Sessions() },
	"alsoKey":        func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Also() },
	"callbacksKey":   func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Callbacks() },
	"verifyKey":      func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Verifications() },
	"verifyMember":   func(_ keyspace.Keyspace, b string, k int, _ string) string { return keyspace.VerifyMember(b, k) },
	"epochKey":       func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Epoch() },
	"seqKey":         func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.Seq() },
	"lostIndex":      func(ks keyspace.Keyspace, _ string, _ int, _ string) string { return ks.LostIndex() },
	"lostKey":        func(ks keyspace.Keyspace, b string, _ int, _ string) string { return ks.Lost(b) },
}

// luaCall is how the test calls each prelude function: the argument names
// of its definition, mapped to the test's batch (b), bucket (k) and id (a
// round is passed as the bucket).
func luaCall(t *testing.T, name string) string {
	t.Helper()
	for _, line := range strings.Split(keyspace.Lua, "\n") {
		if v, ok := strings.CutPrefix(line, "local "+name+" = "); ok && v != "" {
			return name
		}
		if rest, ok := strings.CutPrefix(line, "local function "+name+"("); ok {
			params, _, _ := strings.Cut(rest, ")")
			args := strings.Split(params, ", ")
			for i, p := range args {
				switch p {
				case "b":
					args[i] = "ARGV[2]"
				case "k", "round":
					args[i] = "ARGV[3]"
				case "id", "q":
					args[i] = "ARGV[4]"
				default:
					t.Fatalf("%s takes %q: the test does not know what to pass", name, p)
				}
			}
			return name + "(" + strings.Join(args, ", ") + ")"
		}
	}
	t.Fatalf("the Lua prelude defines no %s", name)
	return ""
}

// luaNames lists the keys the prelude defines: every local but P, bucket
// and its helper.
func luaNames() []string {
	var names []string
	for _, line := range strings.Split(keyspace.Lua, "\n") {
		rest, ok := strings.CutPrefix(line, "local ")
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "function ")
		name := rest[:strings.IndexAny(rest, " (")]
		if name != "P" && name != "bucket" && name != "bucketTail" {
			names = append(names, name)
		}
	}
	return names
}

// TestLuaAgreesWithGo: every key the Lua prelude builds is the key Go
// builds, for batch names, buckets, ids and prefixes at their extremes,
// and the prelude defines no key Go does not know (nor the other way).
func TestLuaAgreesWithGo(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	names := luaNames()
	if len(names) != len(goKeys) {
		t.Errorf("the Lua prelude defines %d keys %q, the test pairs %d with Go: pair the new one", len(names), names, len(goKeys))
	}
	var calls []string
	for _, name := range names {
		if goKeys[name] == nil {
			t.Fatalf("the Lua prelude defines %s, which the test pairs with no Go method", name)
		}
		calls = append(calls, luaCall(t, name))
	}
	script := redis.NewScript(keyspace.Lua + "return {" + strings.Join(calls, ", ") + "}")
	for _, prefix := range []string{keyspace.DefaultPrefix, "", "x:", "{tenant}:"} {
		ks := keyspace.New(prefix)
		for _, b := range []string{"gdpr-118", "a", "run-ids.txt-94b4b955", "invalid-tasks"} {
			for _, k := range []int{0, 7, 4095} {
				for _, id := range []string{"7379996104798150001", "1", "del:1"} {
					got, err := script.Run(context.Background(), rdb, nil, prefix, b, k, id).StringSlice()
					if err != nil {
						t.Fatal(err)
					}
					for i, name := range names {
						if want := goKeys[name](ks, b, k, id); got[i] != want {
							t.Errorf("prefix %q batch %q bucket %d id %q: Lua %s = %q, Go says %q", prefix, b, k, id, name, got[i], want)
						}
					}
				}
			}
		}
	}
}

// TestBucketAgreesWithGo: the Lua bucket function puts every id in the
// bucket Go puts it in, for short ids, leading zeros (which Redis's Lua
// would read as octal in arithmetic on the text) and every bucket count.
func TestBucketAgreesWithGo(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	ids := []string{"0", "1", "7", "10", "99", "123456", "012345", "000008", "000009", "0000000", "999999",
		"1000000", "7379996104798150001", "7379996104798150999", "18446744073709551615"}
	for i := range 200 {
		ids = append(ids, strconv.FormatUint(7379996104798150001+uint64(i)*7919, 10))
	}
	counts := []int{1, 3, 64, 128, 1024, 4096}
	script := redis.NewScript(keyspace.Lua + `
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = bucket(ARGV[i], tonumber(ARGV[2]))
end
return out`)
	for _, n := range counts {
		args := append([]any{"p:", n}, toAny(ids)...)
		got, err := script.Run(context.Background(), rdb, nil, args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if want := keyspace.Bucket(id, n); got[i] != int64(want) {
				t.Errorf("bucket(%q, %d): Lua says %d, Go %d", id, n, got[i], want)
			}
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestLayoutIsStable pins the keys existing deployments hold: a change here
// is a data migration, not a refactor.
func TestLayoutIsStable(t *testing.T) {
	t.Parallel()
	ks := keyspace.New(keyspace.DefaultPrefix)
	for _, pair := range [][2]string{
		{ks.Batch("b"), "coze-eraser:batch:b"},
		{ks.BatchIDs("b", 7), "coze-eraser:batch:b:ids:7"},
		{ks.BatchAdders("b"), "coze-eraser:batch:b:adders"},
		{ks.BatchListings("b"), "coze-eraser:batch:b:listings"},
		{ks.BatchHistory("b"), "coze-eraser:batch:b:history"},
		{ks.BatchUnfed("b", "gdpr"), "coze-eraser:batch:b:unfed:gdpr"},
		{ks.Feed("gdpr"), "coze-eraser:feed:gdpr"},
		{ks.Feeds(), "coze-eraser:feeds"},
		{ks.Failure("b", "1"), "coze-eraser:failure:b:1"},
		{keyspace.FailureMember("b", "1"), "b/1"},
		{ks.Failures(), "coze-eraser:failures"},
		{ks.Batches(), "coze-eraser:batches"},
		{ks.OpenBatches(), "coze-eraser:batches:open"},
		{ks.Sessions(), "coze-eraser:sessions"},
		{ks.Also(), "coze-eraser:also"},
		{ks.Callbacks(), "coze-eraser:callbacks"},
		{ks.Verifications(), "coze-eraser:verify"},
		{keyspace.VerifyMember("b", 2), "b/2"},
		{ks.Epoch(), "coze-eraser:epoch"},
		{ks.Seq(), "coze-eraser:seq"},
		{ks.LostIndex(), "coze-eraser:lost"},
		{ks.Lost("b"), "coze-eraser:lost:b"},
		{ks.Lock("janitor"), "coze-eraser:lock:janitor"},
		{ks.Sweep("nightly"), "coze-eraser:sweep:nightly"},
		{ks.Replicated(), "coze-eraser:replicated"},
		{ks.ControlChannel(), "coze-eraser:control"},
		{ks.Workers(), "coze-eraser:workers"},
		{ks.Worker("h-1"), "coze-eraser:worker:h-1"},
		{ks.Budget("ab12"), "coze-eraser:budget:ab12"},
		{keyspace.BudgetInflight("k"), "k:inflight"},
		{keyspace.BudgetFreed("k"), "k:freed"},
		{keyspace.BudgetLearned("k"), "k:learned"},
		{fmt.Sprint(keyspace.Bucket("123", 64)), "59"},
	} {
		if got, want := pair[0], pair[1]; got != want {
			t.Errorf("key %q, existing deployments hold %q", got, want)
		}
	}
}
