// Package asynqwire writes tasks into Redis the way asynq v0.26's
// Client.Enqueue does, many in one round trip.
//
// asynq has no batch enqueue: its Client makes one round trip per task, and
// at that pace Redis spends most of its time reading and answering requests,
// not storing tasks. A bulk enqueue of millions of ids needs many tasks per
// round trip, so this package encodes asynq's task message itself and runs,
// for a whole chunk in one script, the steps asynq's enqueue script runs for
// one task (create the task hash unless a task with the id exists, then push
// the id onto the pending list, or add it to the scheduled set).
//
// The layout it writes is asynq's, so everything else (servers, Inspector,
// the web UI) sees ordinary tasks. It is pinned to asynq v0.26: the tests
// compare what it writes, byte for byte, with what asynq's Client writes, so
// that an asynq upgrade that changes the layout fails them.
package asynqwire

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// DefaultTimeout is the task timeout asynq's Client sets when a task has
// neither a timeout nor a deadline.
const DefaultTimeout = 30 * time.Minute

// Task is one task to write.
type Task struct {
	// ID is the task id; a task with the same id already in the queue is a
	// conflict, as with asynq's TaskID option.
	ID      string
	Type    string
	Payload []byte
	Queue   string
	// MaxRetry is asynq's MaxRetry option.
	MaxRetry int
	// Timeout is asynq's Timeout option; zero means DefaultTimeout.
	Timeout time.Duration
	// ProcessAt, when after now, schedules the task instead of making it
	// pending, as asynq's ProcessAt option does.
	ProcessAt time.Time
	// Guard, when set, makes the write conditional, checked in the same
	// atomic step as the write.
	Guard *Guard
}

// Guard makes a task's write depend on a hash field that someone else may
// change at any moment: the task is written only while the field is missing
// or holds one of Allow. A producer uses it to write a task only while its
// id still needs one: a worker may record the id's outcome between the
// producer's read and its write.
type Guard struct {
	Key, Field string
	// Allow lists the values that allow the write; none may contain a space.
	Allow []string
}

// Result is what EnqueueMany did with one task.
type Result byte

// The results of a task's write.
const (
	// Written: the task is in its queue now.
	Written Result = '1'
	// Conflict: a task with its id was in its queue already, or a live
	// one in another queue, and nothing was changed (asynq's
	// ErrTaskIDConflict, across queues).
	Conflict Result = '0'
	// Refused: the task's guard did not allow the write.
	Refused Result = '2'
)

// Writer writes tasks. It is safe for concurrent use.
type Writer struct {
	rdb redis.UniversalClient
	now func() time.Time
	// published holds the queues known to be in asynq's set of queues,
	// which asynq's Client also adds to once per queue and process.
	published sync.Map
}

// NewWriter returns a Writer that writes through rdb.
func NewWriter(rdb redis.UniversalClient) *Writer {
	return &Writer{rdb: rdb, now: time.Now}
}

// The scripts do, for each task in turn, what asynq's enqueue and schedule
// scripts do for one: create the task hash unless a task with the id
// exists, then push the id onto the pending list or add it to the
// scheduled set. They return one digit per task: 1 written, 0 conflict.
//
// Unlike asynq, they also count as a conflict a live task (pending,
// scheduled, retry, active) with the same id in any other queue: asynq's
// task ids are unique per queue only, and a conversation must be deleted
// with one call whatever queues its batches use. The caller links to that
// task instead (ledger.Link finds it).
var (
	// KEYS: 1 the pending list, then per task its hash and its guard's
	// hash. ARGV: 1 now in Unix ns, 2 the queue, then per task its
	// message, its id, its guard's field ('' for none) and the values that
	// allow the write.
	enqueueScript = redis.NewScript(guardLoop(`
    redis.call('HSET', taskKey, 'msg', msg, 'state', 'pending', 'pending_since', ARGV[1])
    redis.call('LPUSH', KEYS[1], id)`))
	// KEYS: 1 the scheduled set, then as above. ARGV: 1 process-at in Unix
	// s, 2 the queue, then as above.
	scheduleScript = redis.NewScript(guardLoop(`
    redis.call('HSET', taskKey, 'msg', msg, 'state', 'scheduled')
    redis.call('ZADD', KEYS[1], ARGV[1], id)`))
)

// guardLoop is the loop both scripts share: for each task, the guard, then
// the conflict check, then write (asynq's own steps for one task). It
// returns one result digit per task.
func guardLoop(write string) string {
	return Lua + `
-- The queue is named in asynq's set of queues on every call, not once per
-- process: after Redis lost the set, other writers' cross-queue checks
-- must still see this queue's tasks.
redis.call('SADD', asynqQueuesKey, ARGV[2])
local others = {}
for _, q in ipairs(redis.call('SMEMBERS', asynqQueuesKey)) do
  if q ~= ARGV[2] then
    others[#others + 1] = asynqTaskPrefix(q)
  end
end
local function liveElsewhere(id)
  for _, prefix in ipairs(others) do
    if asynqLive[redis.call('HGET', prefix .. id, 'state')] then
      return true
    end
  end
  return false
end
local out = {}
local k = 0
while 2 + 2 * k <= #KEYS do
  local taskKey, guardKey = KEYS[2 + 2 * k], KEYS[3 + 2 * k]
  local a = 3 + 4 * k
  local msg, id, field, allow = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local v = field ~= '' and redis.call('HGET', guardKey, field)
  if v and not string.find(' ' .. allow .. ' ', ' ' .. v .. ' ', 1, true) then
    out[#out + 1] = '2'
  elseif redis.call('EXISTS', taskKey) == 1 or liveElsewhere(id) then
    out[#out + 1] = '0'
  else` + write + `
    out[#out + 1] = '1'
  end
  k = k + 1
end
return table.concat(out)`
}

// EnqueueMany writes tasks and reports what it did with each. Tasks of one
// queue and one ProcessAt (the usual chunk) take one round trip. On an
// error some tasks may have been written; writing them again is safe, as
// they then conflict.
func (w *Writer) EnqueueMany(ctx context.Context, tasks []Task) ([]Result, error) {
	results := make([]Result, len(tasks))
	now := w.now()
	for _, g := range groups(tasks, now) {
		if err := w.publishQueue(ctx, g.queue); err != nil {
			return nil, err
		}
		written, err := w.write(ctx, tasks, g, now)
		if err != nil {
			return nil, err
		}
		for j, i := range g.tasks {
			results[i] = Result(written[j])
		}
	}
	return results, nil
}

// A group is tasks written by one script call: one queue, pending or
// scheduled for the same second.
type group struct {
	queue     string
	processAt int64 // Unix s; 0 for pending
	tasks     []int // indexes
}

func groups(tasks []Task, now time.Time) []group {
	type key struct {
		queue     string
		processAt int64
	}
	var out []group
	index := map[key]int{}
	for i, t := range tasks {
		k := key{queue: t.Queue}
		if t.ProcessAt.After(now) {
			k.processAt = t.ProcessAt.Unix()
		}
		j, ok := index[k]
		if !ok {
			j = len(out)
			index[k] = j
			out = append(out, group{queue: k.queue, processAt: k.processAt})
		}
		out[j].tasks = append(out[j].tasks, i)
	}
	return out
}

// write runs the script of g, loading it first if Redis lost its scripts
// (a restart, SCRIPT FLUSH), and returns its digits.
func (w *Writer) write(ctx context.Context, tasks []Task, g group, now time.Time) (string, error) {
	keys := make([]string, 1, 1+2*len(g.tasks))
	args := make([]any, 2, 2+4*len(g.tasks))
	script := enqueueScript
	keys[0], args[0], args[1] = pendingKey(g.queue), now.UnixNano(), g.queue
	if g.processAt != 0 {
		script = scheduleScript
		keys[0], args[0] = scheduledKey(g.queue), g.processAt
	}
	for _, i := range g.tasks {
		t := tasks[i]
		key := TaskKey(t.Queue, t.ID)
		if t.Guard == nil {
			keys = append(keys, key, key) // no guard: its key is not read
			args = append(args, Encode(t), t.ID, "", "")
			continue
		}
		keys = append(keys, key, t.Guard.Key)
		args = append(args, Encode(t), t.ID, t.Guard.Field, strings.Join(t.Guard.Allow, " "))
	}
	written, err := script.Run(ctx, w.rdb, keys, args...).Text()
	if err != nil {
		return "", fmt.Errorf("enqueue tasks: %w", err)
	}
	if len(written) != len(g.tasks) {
		return "", fmt.Errorf("enqueue tasks: %d answers for %d tasks", len(written), len(g.tasks))
	}
	return written, nil
}

func (w *Writer) publishQueue(ctx context.Context, queue string) error {
	if _, ok := w.published.Load(queue); ok {
		return nil
	}
	if err := w.rdb.SAdd(ctx, QueuesKey, queue).Err(); err != nil {
		return fmt.Errorf("enqueue tasks: %w", err)
	}
	w.published.Store(queue, true)
	return nil
}

// Encode returns t as asynq's TaskMessage protobuf, the "msg" field of a
// task hash: the fields asynq's Client sets for a task without unique key,
// group, retention or headers, in field-number order, zero values left out.
func Encode(t Task) []byte {
	timeout := t.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	b := make([]byte, 0, 32+len(t.Type)+len(t.Payload)+len(t.ID)+len(t.Queue))
	b = appendString(b, 1, t.Type)
	b = appendBytes(b, 2, t.Payload)
	b = appendString(b, 3, t.ID)
	b = appendString(b, 4, t.Queue)
	b = appendVarint(b, 5, uint64(int32(t.MaxRetry)))
	b = appendVarint(b, 8, uint64(int64(timeout.Seconds())))
	return b
}

// Template splits the message of t, as [Encode] writes it, around its
// payload and task id (fields 2 and 3), so that a script can write the
// tasks of many ids from one template: head holds the fields before the
// payload, tail those after the id. The prelude's asynqMessage(head,
// payload, tid, tail) puts them together again; t's Payload and ID are not
// read.
func Template(t Task) (head, tail []byte) {
	full := Encode(Task{Type: t.Type, Queue: t.Queue, MaxRetry: t.MaxRetry, Timeout: t.Timeout})
	head = appendString(nil, 1, t.Type)
	return head, full[len(head):]
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
