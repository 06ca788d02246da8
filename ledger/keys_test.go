package ledger

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// keyNames are batch names an attacker would try: each separator a ledger
// key or member uses, embedded where it would reach another batch's key,
// next to the valid names they would hit. Only the names tasks.ValidateBatch
// accepts can reach the ledger (and InvalidBatch, which the worker uses).
var keyNames = []string{
	"evil", "evil:ids:1", "evil:ids", "evil:adders", "evil:1", "evil/1", "evil@q", "evil q", "{evil}",
	"evil-ids-1", "evil.ids.1", "evil_adders", "evil1", "ids", "adders", "1", "e", "batches", "also",
	"callbacks", "failures", "open", InvalidBatch, "invalid-tasks:x",
}

// keyIDs are what the ledger keys an outcome by: conversation ids, and the
// task ids of refused tasks, which another producer chose freely.
var keyIDs = []string{"1", "12", "123", "7379996104798150001", "del:1", "ids:1", "1/2", "x@y", "a b", ":adders", "1:2"}

// keyQueues are queue names, valid and hostile, as link entries and the
// batch's queue list hold them.
var keyQueues = []string{"default", "q", "q1", "a", "a b", "q@x", "q/1", "q:1", "{q}", "callbacks"}

// keysOf evaluates the prelude's own key and member builders in Redis, so
// the test follows the scripts if their formats change.
var keysOf = script(`
return {metaKey(ARGV[2]), idsKey(ARGV[2], ARGV[3]), addersKey(ARGV[2]), failKey(ARGV[2], ARGV[4]),
  failMember(ARGV[2], ARGV[4]), listingsKey(ARGV[2]), verifyMember(ARGV[2], ARGV[3]), historyKey(ARGV[2])}`)

// TestKeysCannotCollide: for every key the ledger writes (batch hash, id
// buckets, adders, listings, failure records) and every index member that
// names a batch (failures index, callbacks set, verification outbox, link
// entries), two different valid
// names or ids never give the same string, and a name never reaches a key
// of the fixed indexes. Keys are built by the ledger's own Go and Lua code.
func TestKeysCannotCollide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	l := New(rdb)
	names := validNames(keyNames, tasks.ValidateBatch)
	if !slices.Contains(names, InvalidBatch) { // the worker writes it, unvalidated
		names = append(names, InvalidBatch)
	}
	if len(names) < 15 {
		t.Fatalf("only %d valid names in the corpus: %q", len(names), names)
	}

	keys := map[string]string{} // key -> who wrote it
	claim := func(key, who string) {
		t.Helper()
		if prev, dup := keys[key]; dup && prev != who {
			t.Errorf("%s and %s share the key %q", prev, who, key)
		}
		keys[key] = who
	}
	for _, fixed := range []string{l.ks.Batches(), l.ks.OpenBatches(), l.ks.Also(), l.ks.Callbacks(), l.ks.Failures(),
		l.ks.Lock("janitor"), l.ks.Epoch(), l.ks.Seq(), l.ks.LostIndex(), l.ks.Verifications()} {
		claim(fixed, "the index "+fixed)
	}
	members := map[string]string{}       // failures index member -> who
	verifyMembers := map[string]string{} // verification outbox member -> who
	for _, b := range names {
		for _, k := range []int{0, 1, 63, Buckets - 1} {
			for _, id := range keyIDs {
				got, err := keysOf.Run(ctx, rdb, nil, l.prefix, b, k, id).StringSlice()
				if err != nil {
					t.Fatal(err)
				}
				if got[0] != l.ks.Batch(b) || got[1] != l.ks.BatchIDs(b, k) || got[3] != l.ks.Failure(b, id) {
					t.Fatalf("Go and Lua disagree on the keys of %q: %q", b, got)
				}
				claim(got[0], "meta of "+strconv.Quote(b))
				claim(got[1], "ids of "+strconv.Quote(b)+" bucket "+strconv.Itoa(k))
				claim(got[2], "adders of "+strconv.Quote(b))
				claim(got[5], "listings of "+strconv.Quote(b))
				if got[5] != l.ks.BatchListings(b) {
					t.Fatalf("Go and Lua disagree on the listings of %q: %q", b, got[5])
				}
				claim(got[7], "history of "+strconv.Quote(b))
				if got[7] != l.ks.BatchHistory(b) {
					t.Fatalf("Go and Lua disagree on the history of %q: %q", b, got[7])
				}
				checkVerifyMember(t, b, k, got[6], verifyMembers)
				claim(got[3], "failure of "+strconv.Quote(b)+" id "+strconv.Quote(id))
				who := strconv.Quote(b) + " id " + strconv.Quote(id)
				if prev, dup := members[got[4]]; dup && prev != who {
					t.Errorf("failure members of %s and %s are both %q", prev, who, got[4])
				}
				members[got[4]] = who
				// Failures reads a member back by its first '/'.
				if gotB, gotID, _ := strings.Cut(got[4], "/"); gotB != b || gotID != id {
					t.Errorf("failure member %q reads back as %q / %q", got[4], gotB, gotID)
				}
			}
		}
	}
	checkLinkEntries(t, names)
	checkCallbackMembers(t, names)
}

// checkLinkEntries: link.lua keeps "batch@queue" entries, space-separated,
// in the "also" hash, and open.lua keeps a batch's queues space-separated;
// readers split on white space and then on the first '@'.
func checkLinkEntries(t *testing.T, names []string) {
	t.Helper()
	queues := validNames(keyQueues, tasks.ValidateQueue)
	if len(queues) < 3 {
		t.Fatalf("only %d valid queues in the corpus: %q", len(queues), queues)
	}
	seen := map[string]string{}
	for _, b := range names {
		for _, q := range queues {
			entry := b + "@" + q // link.lua: ARGV[3] .. '@' .. ARGV[4]
			if strings.ContainsFunc(entry, isSpace) {
				t.Errorf("link entry %q holds white space: a list of entries would split inside it", entry)
			}
			if gotB, gotQ, _ := strings.Cut(entry, "@"); gotB != b || gotQ != q {
				t.Errorf("link entry %q reads back as %q @ %q", entry, gotB, gotQ)
			}
			if prev, dup := seen[entry]; dup {
				t.Errorf("link entries of %s and %s/%s are both %q", prev, b, q, entry)
			}
			seen[entry] = b + "/" + q
		}
	}
}

// checkVerifyMember: the prelude's tryComplete asks for round k of batch b
// as "b/k"; PendingVerifications reads it back by its last '/'.
func checkVerifyMember(t *testing.T, b string, k int, member string, seen map[string]string) {
	t.Helper()
	if k < 1 {
		return // rounds start at 1
	}
	who := strconv.Quote(b) + " round " + strconv.Itoa(k)
	if prev, dup := seen[member]; dup && prev != who {
		t.Errorf("verification members of %s and %s are both %q", prev, who, member)
	}
	seen[member] = who
	i := strings.LastIndexByte(member, '/')
	if i < 0 || member[:i] != b || member[i+1:] != strconv.Itoa(k) {
		t.Errorf("verification member %q does not read back as %q round %d", member, b, k)
	}
}

// checkCallbackMembers: the prelude's tryComplete keeps a completion as
// "batch/completion/total/deleted/not_found/failed/ms"; Completions splits
// it on '/'.
func checkCallbackMembers(t *testing.T, names []string) {
	t.Helper()
	for _, b := range names {
		member := strings.Join([]string{b, "1", "2", "1", "1", "0", "1795000000000"}, "/")
		if f := strings.Split(member, "/"); len(f) != 7 || f[0] != b {
			t.Errorf("callback member %q splits into %q", member, f)
		}
	}
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func validNames(corpus []string, validate func(string) error) []string {
	var out []string
	for _, n := range corpus {
		if validate(n) == nil {
			out = append(out, n)
		}
	}
	return out
}
