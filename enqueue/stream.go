package enqueue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// ErrNoIDs is returned for input that holds no line at all (blank lines
// aside): nothing is queued and no batch is created.
var ErrNoIDs = errors.New("no ids in the input: nothing was queued and no batch was created")

// MaxLineBytes is the longest input line read as a candidate id; a longer
// line is reported invalid and skipped without being held in memory.
const MaxLineBytes = 4096

// Summary is the tally of a stream.
type Summary struct {
	Batch     string
	Enqueued  int
	Duplicate int
	Invalid   int
	// Finished counts duplicates that already had their outcome in the
	// batch; they are included in Duplicate.
	Finished int
}

// String formats the summary as the CLI prints it:
// "enqueued=N duplicate=N invalid=N batch=NAME finished=N".
func (s Summary) String() string {
	return fmt.Sprintf("enqueued=%d duplicate=%d invalid=%d batch=%s finished=%d",
		s.Enqueued, s.Duplicate, s.Invalid, s.Batch, s.Finished)
}

// EnqueueFrom reads one id per line from r and enqueues them as
// [Client.EnqueueAll] does. Blank lines and surrounding whitespace are
// ignored; CRLF line ends and a UTF-8 byte order mark are accepted. r is read
// as a stream: memory does not grow with its length.
func (c *Client) EnqueueFrom(ctx context.Context, r io.Reader, opts ...Option) (Summary, error) {
	return c.enqueueLines(ctx, readLines(r), opts, nil)
}

type line struct {
	number int
	text   string
	// idle is true when no more input is buffered: the next line may take
	// a while, so what was read should be sent now.
	idle bool
}

// readLines reads r line by line, trimming each as [Client.EnqueueFrom]
// does and skipping blank lines. A line over [MaxLineBytes] yields a
// [*LineTooLongError] and reading goes on; a read error ends the sequence.
func readLines(r io.Reader) iter.Seq2[line, error] {
	return func(yield func(line, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			raw, tooLong, err := readLine(br)
			if n == 1 {
				raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
			}
			switch text := strings.TrimSpace(string(raw)); {
			case tooLong:
				if !yield(line{number: n}, &LineTooLongError{Line: n, Start: string(raw)}) {
					return
				}
			case text != "":
				if !yield(line{number: n, text: text, idle: br.Buffered() == 0}, nil) {
					return
				}
			}
			switch {
			case errors.Is(err, io.EOF):
				return
			case err != nil:
				yield(line{number: n}, fmt.Errorf("reading line %d: %w", n, err))
				return
			}
		}
	}
}

// LineTooLongError reports a line over [MaxLineBytes].
type LineTooLongError struct {
	Line int
	// Start is the beginning of the line.
	Start string
}

// Error says the line is too long to be a conversation id, in the same form
// as a *tasks.InvalidIDError.
func (e *LineTooLongError) Error() string {
	return (&tasks.InvalidIDError{Input: e.Start, Reason: fmt.Sprintf("the line is longer than %d bytes", MaxLineBytes)}).Error()
}

// readLine returns the next line, its end included. A line longer than
// MaxLineBytes is consumed without being kept whole: tooLong is set and raw
// holds its first 64 bytes.
func readLine(br *bufio.Reader) (raw []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxLineBytes+2 { // +2 for "\r\n"
				tooLong = true
				buf = append(buf, chunk...)[:64]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			// The allowance above is for a line end; a last line has none.
			if !tooLong && len(bytes.TrimRight(buf, "\r\n")) > MaxLineBytes {
				tooLong, buf = true, buf[:64]
			}
			return buf, tooLong, err
		}
	}
}

// chunkSize is how many ids are added to the batch in one round trip.
const chunkSize = 256

// enqueueLines validates lines in order on the calling goroutine, opens the
// batch at the first valid id (input that cannot be read, or holds no id,
// leaves no batch behind), and hands chunks of valid ids to a pool of
// goroutines that add them to the batch and queue their tasks. onStatus,
// when set, sees each valid id's status.
func (c *Client) enqueueLines(ctx context.Context, lines iter.Seq2[line, error], opts []Option, onStatus func(Status)) (Summary, error) {
	o, err := c.options(opts)
	if err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var counts [3]atomic.Int64 // enqueued, duplicate, finished
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	chunks := make(chan []string, o.concurrency)
	var wg sync.WaitGroup
	var adder *ledger.Adder
	open := func() error {
		if adder, err = c.openBatch(ctx, o); err != nil {
			return err
		}
		for range o.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for chunk := range chunks {
					if err := c.enqueueChunk(ctx, adder, chunk, o, &counts, onStatus); err != nil {
						fail(err)
					}
				}
			}()
		}
		return nil
	}

	sum := Summary{Batch: o.batch}
	var readErr error
	var chunk []string
	send := func() bool {
		if len(chunk) == 0 {
			return true
		}
		select {
		case chunks <- chunk:
			chunk = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	reject := func(n int, err error) {
		sum.Invalid++
		if o.onInvalid != nil {
			o.onInvalid(Invalid{Line: n, Err: err})
		}
	}
feed:
	for l, err := range lines {
		var tooLong *LineTooLongError
		switch {
		case errors.As(err, &tooLong):
			reject(l.number, err)
			continue
		case err != nil:
			readErr = err
			break feed
		}
		if err := tasks.ValidateID(l.text); err != nil {
			reject(l.number, err)
			continue
		}
		if adder == nil {
			if err := open(); err != nil {
				return sum, err
			}
		}
		chunk = append(chunk, l.text)
		if (len(chunk) >= chunkSize || l.idle) && !send() {
			break feed
		}
	}
	send()
	close(chunks)
	wg.Wait()
	sum.Enqueued, sum.Duplicate, sum.Finished = int(counts[0].Load()), int(counts[1].Load()), int(counts[2].Load())
	if err := c.seal(ctx, adder, o, sum, firstErr == nil && readErr == nil && ctx.Err() == nil); err != nil {
		return sum, err
	}
	switch {
	case firstErr != nil:
		return sum, firstErr
	case readErr != nil:
		return sum, readErr
	case ctx.Err() != nil:
		return sum, ctx.Err()
	}
	return sum, nil
}

// seal ends a stream's additions to its batch when every line was read
// (whole). A stream of only invalid lines opens the batch now, so that it
// records what was refused; one with no line at all is ErrNoIDs, with no
// batch. After an error the adder is left to expire, giving a re-run time
// to add the rest before the batch can complete (and call back) without
// them.
func (c *Client) seal(ctx context.Context, adder *ledger.Adder, o options, sum Summary, whole bool) error {
	if !whole {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	if adder == nil {
		if sum.Invalid == 0 {
			return ErrNoIDs
		}
		var err error
		if adder, err = c.openBatch(ctx, o); err != nil {
			return err
		}
	}
	_, err := adder.SealWithInvalid(ctx, sum.Invalid)
	return err
}

// enqueueChunk adds a chunk of ids to the batch in one round trip: a new
// member waits in the batch's unfed list until a worker feeds it into the
// queue as a task (ledger.Ledger.Feed), or, held, until Release. An id in
// the batch already is a duplicate, or finished when it has its outcome.
func (c *Client) enqueueChunk(ctx context.Context, adder *ledger.Adder, ids []string, o options,
	counts *[3]atomic.Int64, onStatus func(Status)) error {
	members, err := adder.Add(ctx, ids)
	if err != nil {
		return err
	}
	// The producer is told these ids are queued: with replicas required,
	// only once they hold them (a failover would otherwise lose them
	// silently). Enqueueing again is safe.
	if err := c.ledger.AwaitReplicas(ctx); err != nil {
		return fmt.Errorf("enqueue: %w (enqueueing again is safe)", err)
	}
	for _, m := range members {
		var status Status
		switch m {
		case ledger.NewMember:
			status = Enqueued
			if o.held {
				status = Held // counted with Enqueued: it is the batch's now, its task to come
			}
			counts[0].Add(1)
		case ledger.FinishedMember:
			status = Finished
			counts[1].Add(1)
			counts[2].Add(1)
		default:
			status = Duplicate
			counts[1].Add(1)
		}
		if onStatus != nil {
			onStatus(status)
		}
	}
	return nil
}
