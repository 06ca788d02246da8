package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/fleet"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// dueSoon is how close a due time must be for the console to warn of it:
// the alert ErasureBatchDueSoon's window.
const dueSoon = 72 * time.Hour

// batchView is a batch as a page shows it. Text from users or the API
// (names, notes, messages) is escaped by html/template.
type batchView struct {
	Name  string
	State string // the raw state, as status --format json says it
	Label string // the state with its verification and control, as the status table says it
	Lost  bool
	// Overdue: ids pending past the due time; DueSoon: ids pending and
	// the due time within three days.
	Overdue, DueSoon                                              bool
	Total, Deleted, NotFound, Failed, Cancelled, Pending, Invalid int
	Finished                                                      int
	Percent                                                       string
	Rate                                                          string
	ETA                                                           string
	Created, Due, DueIn, Completed                                string
	Note                                                          string
	Unserved                                                      []string
	Paused                                                        bool
	Cancellable                                                   bool
	Profile                                                       string
	Session                                                       string
	SessionHash                                                   string
}

func newBatchView(b ledger.Batch, now time.Time) batchView {
	s := report.StatusOf(b, now)
	v := batchView{Name: b.Name, State: s.State, Label: report.StateText(b, now), Lost: !b.LostAt.IsZero(),
		Total: b.Total, Deleted: b.Deleted, NotFound: b.NotFound, Failed: b.Failed, Cancelled: b.Cancelled,
		Pending: b.Pending(), Invalid: b.Invalid, Finished: b.Finished(),
		Rate: fmt.Sprintf("%.1f/s", s.RatePerSecond), ETA: report.ETAText(b, now),
		Created: stamp(b.CreatedAt), Due: stamp(b.DueAt), Note: b.Note, Unserved: s.UnservedQueues,
		Paused: b.Control == ledger.ControlPaused, Profile: b.Profile, Session: s.Session, SessionHash: b.SessionHash}
	if v.Lost {
		v.Label = "lost"
		return v
	}
	v.Percent = fmt.Sprintf("%.1f", report.Percent(b))
	if s.CompletedAt != nil {
		v.Completed = stamp(*s.CompletedAt)
	}
	v.Cancellable = b.Control != ledger.ControlCancelled && (b.Pending() > 0 || b.Verification.State == ledger.VerificationPending)
	if v.Pending > 0 || b.Verification.State == ledger.VerificationPending {
		left := b.DueAt.Sub(now)
		v.Overdue = !b.DueAt.IsZero() && left < 0
		v.DueSoon = !v.Overdue && !b.DueAt.IsZero() && left < dueSoon
		v.DueIn = dueText(left, b.DueAt.IsZero())
	}
	return v
}

// stamp is a time as the pages show it: as status shows it.
func stamp(t time.Time) string { return report.ShortTime(t) }

// dueText says how far the due time is: "in 2d 4h", "3h 10m overdue".
func dueText(left time.Duration, none bool) string {
	if none {
		return ""
	}
	if left < 0 {
		return span(-left) + " overdue"
	}
	return "in " + span(left)
}

// span is a duration in its two largest units: "2d 4h", "3h 10m", "45s".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}

// batchesData is the front page.
type batchesData struct {
	Batches          []batchView
	Open, Overdue    int
	Shown, MaxListed int
}

func (c *Console) batchesPage(w http.ResponseWriter, r *http.Request, v viewer) {
	batches, err := report.ReadBatches(r.Context(), c.cfg.Redis, c.cfg.Ledger, MaxBatches)
	if err != nil {
		c.failed(w, r, &v, "reading the batches", err)
		return
	}
	now := c.cfg.Now()
	d := batchesData{MaxListed: MaxBatches}
	for _, b := range batches {
		bv := newBatchView(b, now)
		d.Batches = append(d.Batches, bv)
		if bv.Overdue {
			d.Overdue++
		} else if bv.Pending > 0 {
			d.Open++
		}
	}
	d.Shown = len(d.Batches)
	c.render(w, r, http.StatusOK, "batches", &v, d)
}

// batchData is one batch's page.
type batchData struct {
	Batch        batchView
	Failures     []ledger.Failure
	MoreFailures bool
	History      []ledger.Action
	Discovery    []ledger.Listing
	Verification []ledger.Listing
	Verified     *ledger.Verification
	Done         string // what the last action did, from the query
	DoneAction   string // which action that was
}

func (c *Console) batchPage(w http.ResponseWriter, r *http.Request, v viewer) {
	b, ok := c.found(w, r, &v, r.PathValue("name"))
	if !ok {
		return
	}
	d := batchData{Batch: newBatchView(b, c.cfg.Now()), History: b.History}
	if done := doneText(r.URL.Query().Get("done")); done != "" {
		d.Done, d.DoneAction = done, r.URL.Query().Get("done")
	}
	if !d.Batch.Lost {
		if err := c.details(r.Context(), b, &d); err != nil {
			c.failed(w, r, &v, "reading the batch", err)
			return
		}
	}
	c.render(w, r, http.StatusOK, "batch", &v, d)
}

// batch reads one batch as status does; a name that cannot be a batch
// is none.
func (c *Console) batch(ctx context.Context, name string) (ledger.Batch, bool, error) {
	if tasks.ValidateBatch(name) != nil {
		return ledger.Batch{}, false, nil
	}
	return report.ReadBatch(ctx, c.cfg.Redis, c.cfg.Ledger, name)
}

// found reads batch name as status does, and answers 404 (or 500 when
// Redis fails) when there is none.
func (c *Console) found(w http.ResponseWriter, r *http.Request, v *viewer, name string) (ledger.Batch, bool) {
	b, ok, err := c.batch(r.Context(), name)
	switch {
	case err != nil:
		c.failed(w, r, v, "reading the batch", err)
	case !ok:
		c.render(w, r, http.StatusNotFound, "error", v, errorPage{Title: "No such batch", Message: "There is no batch " + name + "."})
	}
	return b, err == nil && ok
}

// errEnough stops the failures' walk once the page has its fill.
var errEnough = errors.New("enough failures")

// details reads a batch's failures, listings and verification.
func (c *Console) details(ctx context.Context, b ledger.Batch, d *batchData) error {
	err := c.cfg.Ledger.Failures(ctx, ledger.Filter{Batch: b.Name}, func(f ledger.Failure) error {
		if f.Outcome != ledger.Failed {
			return nil // a failure record whose id later ended otherwise
		}
		if len(d.Failures) == MaxFailures {
			d.MoreFailures = true
			return errEnough
		}
		d.Failures = append(d.Failures, f)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	listings, err := c.cfg.Ledger.Listings(ctx, b.Name)
	if err != nil {
		return err
	}
	for _, li := range listings {
		if li.Phase == ledger.ListingDiscovery {
			d.Discovery = append(d.Discovery, li)
		} else {
			d.Verification = append(d.Verification, li)
		}
	}
	if b.Verification.State != ledger.VerificationNone {
		v := b.Verification
		d.Verified = &v
	}
	return nil
}

// doneText is the note an action's redirect shows.
func doneText(done string) string {
	switch done {
	case "cancel":
		return "Cancelled: the pending ids end cancelled; finished ids keep their outcome."
	case "pause":
		return "Paused: the batch's tasks are held until it is resumed. Its due time still counts."
	case "resume":
		return "Resumed: the batch's tasks run again."
	case "retry-failed":
		return "The failed ids got a new task."
	}
	return ""
}

// actionTimeout bounds an action of the console: a cancel removes its
// batch's tasks one by one.
const actionTimeout = 10 * time.Minute

// act runs a write action from a batch's page, then shows the page again.
func (c *Console) act(w http.ResponseWriter, r *http.Request, v viewer) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if _, ok := c.found(w, r, &v, name); !ok {
		return
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if note == "" {
		note = "from the console by key " + v.Key.Name
	}
	// An action runs to its end even if the browser goes away: a cancel
	// cut short would leave the batch's tasks queued (harmless, but work
	// for the workers to skip).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), actionTimeout)
	defer cancel()
	var err error
	switch action {
	case "cancel":
		_, err = c.enqueue.Cancel(ctx, name, note)
	case "pause":
		err = c.enqueue.Pause(ctx, name, note)
	case "resume":
		err = c.enqueue.Resume(ctx, name, note)
	case "retry-failed":
		_, err = c.enqueue.RetryFailures(ctx, ledger.Filter{Batch: name, Outcome: ledger.Failed}, false)
	default:
		c.render(w, r, http.StatusNotFound, "error", &v, errorPage{Title: "Not found", Message: "There is no action " + action + "."})
		return
	}
	if err != nil {
		c.refused(w, r, &v, name, action, err)
		return
	}
	c.cfg.Logger.Info("console: batch action", "key", v.Key.Name, "action", action, "batch", name)
	http.Redirect(w, r, "/batches/"+url.PathEscape(name)+"?done="+action, http.StatusSeeOther) //nolint:gosec // G710: a local path; the name is escaped and the action one of four
}

// refused answers an action the ledger refused (a complete batch cannot
// be paused, a cancelled one resumed) with why, or a failure.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, v *viewer, name, action string, err error) {
	var oe *enqueue.OptionError
	switch {
	case errors.Is(err, ledger.ErrBatchComplete), errors.Is(err, ledger.ErrBatchCancelled), errors.Is(err, ledger.ErrBatchState),
		errors.As(err, &oe):
		c.render(w, r, http.StatusConflict, "error", v, errorPage{Title: "Not done", Message: err.Error(), Back: "/batches/" + url.PathEscape(name)})
	default:
		c.failed(w, r, v, action+" of a batch", err)
	}
}

// reportDownload serves a batch's proof of erasure as a file.
func (c *Console) reportDownload(format string) func(http.ResponseWriter, *http.Request, viewer) {
	return func(w http.ResponseWriter, r *http.Request, v viewer) {
		name := r.PathValue("name")
		if _, ok := c.found(w, r, &v, name); !ok {
			return
		}
		// Whole before it is sent: an error half-way must not leave a
		// proof that looks complete.
		var buf bytes.Buffer
		if err := report.WriteProof(r.Context(), c.cfg.Ledger, name, format, &buf, c.cfg.Now()); err != nil {
			c.failed(w, r, &v, "writing the report", err)
			return
		}
		contentType := "text/csv; charset=utf-8"
		if format == "jsonl" {
			contentType = "application/x-ndjson"
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="proof-%s.%s"`, name, format))
		_, _ = buf.WriteTo(w)
	}
}

// queueView is one queue: its asynq tasks, and the ids enqueued in it
// that wait in the ledger for a worker to feed them as tasks.
type queueView struct {
	Name                                              string
	Paused                                            bool
	Pending, Active, Scheduled, Retry, Archived, Size int
	Unfed                                             int // ids waiting to be fed as tasks; Size counts them too
	Latency                                           string
	Workers                                           []string
	ProcessedToday, FailedToday                       int
	Served                                            bool
}

// workerView is one live worker.
type workerView struct {
	Instance, Host string
	PID            int
	Queues         string
	Concurrency    int
	Started        string
	Profiles       string
}

type queuesData struct {
	Queues  []queueView
	Workers []workerView
}

func (c *Console) queuesPage(w http.ResponseWriter, r *http.Request, v viewer) {
	names, err := c.inspector.Queues()
	if err != nil {
		c.failed(w, r, &v, "reading the queues", err)
		return
	}
	servers, err := c.inspector.Servers()
	if err != nil {
		c.failed(w, r, &v, "reading the workers", err)
		return
	}
	servedBy := map[string][]string{}
	for _, s := range servers {
		for q := range s.Queues {
			servedBy[q] = append(servedBy[q], fmt.Sprintf("%s (pid %d)", s.Host, s.PID))
		}
	}
	// A queue's ids wait in the ledger until a worker feeds them as
	// tasks: a queue with nothing fed yet may be unknown to asynq.
	unfed, err := c.cfg.Ledger.Unfed(r.Context())
	if err != nil {
		c.failed(w, r, &v, "reading the ids waiting to be fed", err)
		return
	}
	known := map[string]bool{}
	for _, name := range names {
		known[name] = true
	}
	for q, n := range unfed {
		if n > 0 && !known[q] {
			names = append(names, q)
		}
	}
	slices.Sort(names)
	var d queuesData
	for _, name := range names {
		var info asynq.QueueInfo
		if known[name] {
			i, err := c.inspector.GetQueueInfo(name)
			switch {
			case err == nil:
				info = *i
			case unfed[name] == 0:
				continue // removed between the two reads
			}
		}
		d.Queues = append(d.Queues, queueView{Name: name, Paused: info.Paused, Pending: info.Pending, Active: info.Active,
			Scheduled: info.Scheduled, Retry: info.Retry, Archived: info.Archived, Size: info.Size + unfed[name], Unfed: unfed[name],
			Latency: span(info.Latency), Workers: servedBy[name], Served: len(servedBy[name]) > 0,
			ProcessedToday: info.Processed, FailedToday: info.Failed})
	}
	reports, err := fleet.Read(r.Context(), c.cfg.Redis, c.cfg.Ledger.Prefix(), c.cfg.Now())
	if err != nil {
		c.failed(w, r, &v, "reading the workers", err)
		return
	}
	for _, rep := range reports {
		var queues, profiles []string
		for _, q := range slices.Sorted(maps.Keys(rep.Queues)) {
			queues = append(queues, fmt.Sprintf("%s:%d", q, rep.Queues[q]))
		}
		for _, p := range rep.Profiles {
			profiles = append(profiles, p.Name)
		}
		d.Workers = append(d.Workers, workerView{Instance: rep.Instance, Host: rep.Host, PID: rep.PID, Queues: strings.Join(queues, " "),
			Concurrency: rep.Concurrency, Started: stamp(rep.Started), Profiles: strings.Join(profiles, ", ")})
	}
	c.render(w, r, http.StatusOK, "queues", &v, d)
}

// profileView is one profile over the fleet.
type profileView struct {
	Name          string
	Workers       int
	Paused        bool
	PausedFor     string
	PausedWorkers int
	Configured    string
	Effective     string
	Slowed        bool
	LastPushback  string
	Waiting       int
}

func (c *Console) profilesPage(w http.ResponseWriter, r *http.Request, v viewer) {
	now := c.cfg.Now()
	reports, err := fleet.Read(r.Context(), c.cfg.Redis, c.cfg.Ledger.Prefix(), now)
	if err != nil {
		c.failed(w, r, &v, "reading the workers", err)
		return
	}
	var d []profileView
	for _, p := range fleet.Profiles(reports) {
		pv := profileView{Name: p.Name, Workers: p.Workers, Paused: p.Paused > 0, PausedWorkers: p.Paused, Waiting: p.Waiting,
			Configured: rate(p.ConfiguredRate), Effective: rate(p.EffectiveRate), LastPushback: "-"}
		if pv.Paused && !p.PausedSince.IsZero() {
			pv.PausedFor = span(now.Sub(p.PausedSince))
		}
		if !p.LastPushback.IsZero() {
			pv.LastPushback = span(now.Sub(p.LastPushback)) + " ago"
			pv.Slowed = now.Sub(p.LastPushback) < time.Minute
		}
		d = append(d, pv)
	}
	c.render(w, r, http.StatusOK, "profiles", &v, d)
}

// rate is a budget's rate: "60/s", or "none" without a budget.
func rate(perSecond float64) string {
	if perSecond <= 0 {
		return "none"
	}
	return fmt.Sprintf("%g/s", math.Round(perSecond*10)/10)
}
