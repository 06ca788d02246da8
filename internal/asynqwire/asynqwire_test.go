package asynqwire_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

type bundle struct {
	rdb       *redis.Client
	writer    *asynqwire.Writer
	asynq     *asynq.Client
	inspector *asynq.Inspector
}

func setup(t *testing.T) bundle {
	t.Helper()
	rdb := redistest.Start(t).Client()
	return bundle{
		rdb:       rdb,
		writer:    asynqwire.NewWriter(rdb),
		asynq:     asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
	}
}

// TestSameAsAsynqClient writes each task once with asynq's Client and once
// with the Writer, into two queues, and compares what is stored: an asynq
// upgrade that changes its layout fails here.
func TestSameAsAsynqClient(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(time.Hour).Truncate(time.Second)
	cases := []struct {
		name string
		task asynqwire.Task
		opts []asynq.Option
	}{
		{"pending", asynqwire.Task{ID: "del:7379996104798150001", Type: "conversation:delete",
			Payload: []byte(`{"id":"7379996104798150001","batch":"b"}`), MaxRetry: 125}, []asynq.Option{asynq.MaxRetry(125)}},
		{"timeout", asynqwire.Task{ID: "del:7379996104798150002", Type: "conversation:delete",
			Payload: []byte(`{}`), MaxRetry: 3, Timeout: 90 * time.Second}, []asynq.Option{asynq.MaxRetry(3), asynq.Timeout(90 * time.Second)}},
		{"no retry", asynqwire.Task{ID: "x", Type: "t", Payload: []byte("p")}, []asynq.Option{asynq.MaxRetry(0)}},
		{"scheduled", asynqwire.Task{ID: "del:7379996104798150003", Type: "conversation:delete",
			Payload: []byte(`{}`), MaxRetry: 25, ProcessAt: future}, []asynq.Option{asynq.MaxRetry(25), asynq.ProcessAt(future)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			// Ours first: asynq's Client checks only its own queue for a
			// task with the id, the writer every queue.
			ours := tc.task
			ours.Queue = "ours"
			created, err := b.writer.EnqueueMany(ctx, []asynqwire.Task{ours})
			if err != nil || created[0] != asynqwire.Written {
				t.Fatalf("EnqueueMany = %v, %v; want created", created, err)
			}
			opts := append([]asynq.Option{asynq.TaskID(tc.task.ID), asynq.Queue("theirs")}, tc.opts...)
			if _, err := b.asynq.Enqueue(asynq.NewTask(tc.task.Type, tc.task.Payload), opts...); err != nil {
				t.Fatal(err)
			}

			theirs := b.rdb.HGetAll(ctx, asynqwire.TaskKey("theirs", tc.task.ID)).Val()
			mine := b.rdb.HGetAll(ctx, asynqwire.TaskKey("ours", tc.task.ID)).Val()
			if got, want := mine["msg"], string(asynqwire.Encode(withQueue(tc.task, "theirs"))); theirs["msg"] != want {
				t.Errorf("asynq's msg %q, Encode gives %q", theirs["msg"], want)
			} else if got != string(asynqwire.Encode(ours)) {
				t.Errorf("stored msg %q, Encode gives %q", got, asynqwire.Encode(ours))
			}
			if mine["state"] != theirs["state"] || len(mine) != len(theirs) {
				t.Errorf("task hash %v, asynq's %v", keysOf(mine), keysOf(theirs))
			}
			for _, q := range []string{"theirs", "ours"} {
				info, err := b.inspector.GetTaskInfo(q, tc.task.ID)
				if err != nil {
					t.Fatalf("queue %s: %v", q, err)
				}
				if string(info.Payload) != string(tc.task.Payload) || info.Type != tc.task.Type || info.MaxRetry != tc.task.MaxRetry {
					t.Errorf("queue %s: task %+v", q, info)
				}
				if !tc.task.ProcessAt.IsZero() && !info.NextProcessAt.Equal(tc.task.ProcessAt) {
					t.Errorf("queue %s: next process at %v, want %v", q, info.NextProcessAt, tc.task.ProcessAt)
				}
			}
			queues, _ := b.inspector.Queues()
			if len(queues) != 2 {
				t.Errorf("queues %v, want theirs and ours", queues)
			}
		})
	}
}

func withQueue(t asynqwire.Task, q string) asynqwire.Task {
	t.Queue = q
	return t
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestConflicts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	task := func(id string) asynqwire.Task {
		return asynqwire.Task{ID: id, Type: "conversation:delete", Payload: []byte(id), Queue: "default", MaxRetry: 1}
	}
	got, err := b.writer.EnqueueMany(ctx, []asynqwire.Task{task("a"), task("b"), task("a")})
	if err != nil {
		t.Fatal(err)
	}
	W, C := asynqwire.Written, asynqwire.Conflict
	if want := []asynqwire.Result{W, W, C}; !slices.Equal(got, want) {
		t.Errorf("first write %v, want %v", got, want)
	}
	got, err = b.writer.EnqueueMany(ctx, []asynqwire.Task{task("b"), task("c")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []asynqwire.Result{C, W}; !slices.Equal(got, want) {
		t.Errorf("second write %v, want %v", got, want)
	}
	if _, err := b.asynq.Enqueue(asynq.NewTask("conversation:delete", nil), asynq.TaskID("c")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("asynq's Client on a written id: %v, want ErrTaskIDConflict", err)
	}
	q, err := b.inspector.GetQueueInfo("default")
	if err != nil || q.Pending != 3 {
		t.Errorf("queue %+v, %v; want 3 pending", q, err)
	}
}

// TestGuard: a guarded task is written only while its guard field is
// missing or holds an allowed value, pending or scheduled alike; a refused
// task leaves nothing behind.
func TestGuard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.rdb.HSet(ctx, "entries", "pending", "p", "retrying", "r", "done", "d|0|L|1|1").Err(); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	tests := []struct {
		field     string
		processAt time.Time
		want      asynqwire.Result
	}{
		{"pending", time.Time{}, asynqwire.Written},
		{"retrying", later, asynqwire.Written},
		{"missing", time.Time{}, asynqwire.Written},
		{"done", time.Time{}, asynqwire.Refused},
		{"done", later, asynqwire.Refused},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("t%d", i)
		task := asynqwire.Task{ID: id, Type: "t", Queue: "default", ProcessAt: tt.processAt,
			Guard: &asynqwire.Guard{Key: "entries", Field: tt.field, Allow: []string{"p", "r"}}}
		got, err := b.writer.EnqueueMany(ctx, []asynqwire.Task{task})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tt.want {
			t.Errorf("guard on %q: %c, want %c", tt.field, got[0], tt.want)
		}
		exists := b.rdb.Exists(ctx, asynqwire.TaskKey("default", id)).Val() == 1
		if exists != (tt.want == asynqwire.Written) {
			t.Errorf("guard on %q: task exists %v after %c", tt.field, exists, got[0])
		}
	}
	q, err := b.inspector.GetQueueInfo("default")
	if err != nil || q.Pending != 2 || q.Scheduled != 1 {
		t.Errorf("queue %+v, %v; want 2 pending and 1 scheduled", q, err)
	}
}

// TestScriptsLost: after SCRIPT FLUSH (or a Redis restart) the pipeline of
// EVALSHA is refused; the writer loads the scripts and writes again.
func TestScriptsLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tasks := []asynqwire.Task{{ID: "a", Type: "t", Queue: "default"}, {ID: "b", Type: "t", Queue: "default", ProcessAt: time.Now().Add(time.Hour)}}
	if _, err := b.writer.EnqueueMany(ctx, tasks[:1]); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := b.writer.EnqueueMany(ctx, append(tasks, asynqwire.Task{ID: "c", Type: "t", Queue: "default"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []asynqwire.Result{asynqwire.Conflict, asynqwire.Written, asynqwire.Written}; !slices.Equal(got, want) {
		t.Errorf("after SCRIPT FLUSH: %v, want %v", got, want)
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	w := asynqwire.NewWriter(srv.Client())
	srv.Kill()
	_, err := w.EnqueueMany(context.Background(), []asynqwire.Task{{ID: "a", Type: "t", Queue: "default"}})
	if err == nil {
		t.Fatal("EnqueueMany with Redis down: no error")
	}
}

// TestLiveTaskInAnotherQueueConflicts: asynq's task ids are unique per
// queue only; the writer refuses a task whose id is live in any queue
// (pending, scheduled, retry, active), and writes it when the other queue
// holds only a finished one (archived, completed).
func TestLiveTaskInAnotherQueueConflicts(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"pending", "scheduled", "retry", "active", "archived", "completed"} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			id := "del:7379996104798150009"
			b.rdb.SAdd(ctx, asynqwire.QueuesKey, "bulk")
			b.rdb.HSet(ctx, asynqwire.TaskKey("bulk", id), "state", state)
			got, err := b.writer.EnqueueMany(ctx, []asynqwire.Task{{ID: id, Type: "conversation:delete", Payload: []byte(`{}`), Queue: "gdpr"}})
			if err != nil {
				t.Fatal(err)
			}
			live := state != "archived" && state != "completed"
			if want := map[bool]asynqwire.Result{true: asynqwire.Conflict, false: asynqwire.Written}[live]; got[0] != want {
				t.Errorf("with a %s task in another queue: %c, want %c", state, got[0], want)
			}
			if exists := b.rdb.Exists(ctx, asynqwire.TaskKey("gdpr", id)).Val() == 1; exists == live {
				t.Errorf("task written in gdpr: %v", exists)
			}
		})
	}
}

// TestTemplateMessage builds messages in Lua from a Template, as the
// ledger's feed script does, and holds them to Encode byte for byte:
// payloads and ids of every length class of a varint.
func TestTemplateMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	script := redis.NewScript(asynqwire.Lua + `return asynqMessage(ARGV[1], ARGV[2], ARGV[3], ARGV[4])`)
	for _, task := range []asynqwire.Task{
		{Type: "conversation:delete", Queue: "default", MaxRetry: 125},
		{Type: "t", Queue: "q", MaxRetry: 0, Timeout: time.Hour},
		{Type: "conversation:delete", Queue: "gdpr", MaxRetry: 1100},
	} {
		head, tail := asynqwire.Template(task)
		for _, n := range []int{1, 100, 127, 128, 300, 16383, 16384, 70000} {
			task.Payload = []byte(strings.Repeat("x", n))
			task.ID = "del:" + strings.Repeat("7", n%200+1)
			got, err := script.Run(context.Background(), b.rdb, nil, head, task.Payload, task.ID, tail).Text()
			if err != nil {
				t.Fatal(err)
			}
			if want := string(asynqwire.Encode(task)); got != want {
				t.Fatalf("queue %s, payload of %d bytes: Lua wrote %q, Encode %q", task.Queue, n, got, want)
			}
		}
	}
}
