package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/subject"
)

// subjectFlags are erase-subject's: who the subject is (a profile and a
// session), where their conversations are (bots, connectors), and the
// batch's settings.
type subjectFlags struct {
	redis        redisFlags
	batch        batchFlags
	target       subjectTarget
	listing      listingFlags
	profilesFile profileFlags
}

// subjectTarget names a data subject and where to look for their
// conversations, shared by erase-subject and run.
type subjectTarget struct {
	profile      string
	session      string
	botIDs       []string
	connectorIDs []string
}

func (t *subjectTarget) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.profile, "profile", "", "the OAuth JWT app profile (of --profiles) the subject's session belongs to")
	t.registerSubject(cmd)
}

// registerSubject registers the flags but --profile, which run has already.
func (t *subjectTarget) registerSubject(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&t.session, "session", "", "the subject's session (the session_name their conversations were created under). "+
		"Personal data: never printed, erased from the ledger once the batch completes; prefer the variable to the flag, which other users see in ps")
	fl.StringArrayVar(&t.botIDs, "bot-id", nil, "a bot to erase the subject's conversations on (repeat, or separate with commas)")
	fl.StringSliceVar(&t.connectorIDs, "connector-id", nil, "channels to list on each bot: 1024 (API, the default), 999 (Chat SDK), or both: 1024,999")
}

// request checks the target and returns the library's request.
func (t *subjectTarget) request(batch string) (subject.Request, error) {
	var bots []string
	for _, b := range t.botIDs {
		for part := range strings.SplitSeq(b, ",") {
			if part = strings.TrimSpace(part); part != "" {
				bots = append(bots, part)
			}
		}
	}
	switch {
	case t.profile == "":
		return subject.Request{}, setupError("--profile is required: the OAuth JWT app profile the subject's session belongs to")
	case t.session == "":
		return subject.Request{}, setupError("--session is required (or its variable): the subject's session name")
	case len(bots) == 0:
		return subject.Request{}, setupError("--bot-id is required: the bots to erase the subject's conversations on")
	}
	for _, b := range bots {
		if err := coze.ValidateBotID(b); err != nil {
			return subject.Request{}, setupError("--bot-id: %v", strings.TrimPrefix(err.Error(), coze.ErrBadQuery.Error()+": "))
		}
	}
	for _, c := range t.connectorIDs {
		if err := coze.ValidateConnectorID(c); err != nil {
			return subject.Request{}, setupError("--connector-id: %v", strings.TrimPrefix(err.Error(), coze.ErrBadQuery.Error()+": "))
		}
	}
	return subject.Request{Profile: t.profile, Session: t.session, BotIDs: bots, ConnectorIDs: t.connectorIDs, Batch: batch}, nil
}

// listingFlags are the knobs of a producer that lists as a profile: its
// calls' timeout and the fleet rate budget it draws on.
type listingFlags struct {
	requestTimeout time.Duration
	rate           rateValue
}

func (f *listingFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&f.requestTimeout, "request-timeout", coze.DefaultTimeout, "timeout of one list call, body included (1s to 10m)")
	f.rate = rateValue{auto: true}
	fl.Var(&f.rate, "rate", "requests per second of the profile's fleet budget, which the list calls share with the workers' "+
		"deletions: auto uses what the budget learned; N caps it; 0 lists without the budget; the profile's rate wins")
}

func (a *app) eraseSubjectCommand() *cobra.Command {
	var f subjectFlags
	cmd := &cobra.Command{
		Use:   "erase-subject --profile P --session S --bot-id B [--bot-id B2 …]",
		Short: "Erase every conversation of a data subject's session on some bots, and verify it",
		Long: `Erase a data subject: list every conversation of their session (an end user of
an OAuth JWT app, named by --profile and --session) on each --bot-id and
--connector-id, as that session, and queue their deletion as that session in
one batch. Every page is read before anything is deleted (the list endpoint
pages by number: deleting while reading would skip conversations). The batch
records the listings: bots and connectors, pages, conversations found and
each list call's log id.

When the batch's deletions are done, a worker lists the session's
conversations again: an id still listed is recorded as failed, "still
listed", whatever its DELETE answered (Coze answers "not found" also to a
caller without permission); conversations created since are deleted and
verified in turn, up to 3 rounds. The batch completes only then; status
shows its verification, and the report carries the listings.

The command returns once the deletions are queued: the workers (with the
same --profiles, and COZE_ERASER_SESSION_KEY_FILE) do the rest. It needs the
profile's private key, as the workers do: only the session can list its
conversations. The last line on standard output is
  found=N enqueued=N duplicate=N batch=NAME

Exit status: 0 when every listing finished; 2 when the command could not
run (bad flags, Redis, the profile) or a listing could not finish. What it
found is queued either way, and verification lists everything again; running
the same command again is safe.`,
		Example: `  export COZE_ERASER_ERASE_SUBJECT_SESSION=user-4711
  coze-eraser erase-subject --profiles profiles.yaml --profile app-eu --bot-id 7379996104798150001 \
    --bot-id 7379996104798150002 --connector-id 1024,999 --batch dsr-4711 --due-in 720h --note "DSR-4711"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return setupError("erase-subject takes no arguments (got %d): name the subject with --profile, --session and --bot-id", len(args))
			}
			return a.runEraseSubject(cmd.Context(), &f)
		},
	}
	f.redis.register(cmd, 0)
	f.batch.register(cmd, "batch name (default: generated and printed)")
	f.target.register(cmd)
	f.listing.register(cmd)
	f.profilesFile.register(cmd)
	return cmd
}

func (a *app) runEraseSubject(ctx context.Context, f *subjectFlags) error {
	req, err := f.target.request(f.batch.batch)
	if err != nil {
		return err
	}
	opts, err := f.batch.options(nil, "")
	if err != nil {
		return err
	}
	if err := optionFlagError(enqueue.CheckOptions(time.Now(), append(opts, enqueue.Profile(req.Profile), enqueue.Session(req.Session))...)); err != nil {
		return err
	}
	lister, err := a.sessionLister(f.profilesFile, f.listing, req.Profile, req.Session)
	if err != nil {
		return err
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	walker, closeBudget, err := lister.walker(rdb, f.listing)
	if err != nil {
		return err
	}
	defer closeBudget()
	led, client, err := f.redis.writer(rdb)
	if err != nil {
		return err
	}
	if req.Batch == "" {
		req.Batch = client.DefaultBatch()
	}
	fmt.Fprintf(a.stderr, "batch %s (coze-eraser status %s)\n", req.Batch, req.Batch)
	fmt.Fprintf(a.stderr, "listing as profile %s, for an end user's session (--session, not shown)\n", req.Profile)
	if w := unservedWarning(ctx, rdb, f.batch.queue); w != "" {
		fmt.Fprintln(a.stderr, w)
	}
	eraser := &subject.Eraser{Enqueue: client, Ledger: led, Walker: walker}
	res, err := eraser.Erase(ctx, req, opts...)
	for _, li := range res.Listings {
		fmt.Fprintln(a.stderr, listingLine(li))
	}
	fmt.Fprintln(a.stdout, res)
	switch {
	case errors.Is(err, subject.ErrIncomplete):
		return &exitError{code: exitSetup, err: fmt.Errorf("%w; what was found is queued, the batch's verification lists every bot again "+
			"once those deletions are done, and running the same command again is safe", err)}
	case errors.Is(err, ledger.ErrBatchConflict):
		return setupError("%v", err)
	case err != nil:
		return &exitError{code: exitSetup, err: fmt.Errorf("%w (running the same command again is safe)", err)}
	}
	return nil
}

// listingLine tells one listing on standard error: "listed bot B
// (connector C): N conversations on P pages". The error, text from the
// API, is made printable.
func listingLine(li ledger.Listing) string {
	line := fmt.Sprintf("listed bot %s (connector %s): %s on %s", li.BotID, li.ConnectorID,
		plural(li.Found, "conversation"), plural(li.Pages, "page"))
	if li.Error != "" {
		line += ": stopped: " + report.Printable(li.Error)
	}
	return line
}

// plural is "1 page", "2 pages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// profileLister is a profile made able to list, as itself or as one of
// its sessions.
type profileLister struct {
	id     workIdentity
	lister discovery.Lister
}

// sessionLister builds the client that lists as session of profile, a
// JWT profile of the profiles file. Errors name the profile and never the
// session.
func (a *app) sessionLister(pf profileFlags, lf listingFlags, profile, session string) (*profileLister, error) {
	if lf.requestTimeout < minRequestTimeout || lf.requestTimeout > maxRequestTimeout {
		return nil, setupError("--request-timeout %v: must be %v to %v", lf.requestTimeout, minRequestTimeout, maxRequestTimeout)
	}
	set, err := pf.load()
	if err != nil {
		return nil, err
	}
	p, ok := set.Get(profile)
	switch {
	case !ok:
		return nil, setupError("--profile %s: not a profile of --profiles %s (it has: %s)", profile, pf.file, strings.Join(set.Names(), ", "))
	case session != "" && p.JWT == nil:
		return nil, setupError("--profile %s is a static token, which has no sessions: give the OAuth JWT app profile the session belongs to", profile)
	}
	id, err := a.newIdentity(p, slog.New(slog.NewTextHandler(a.stderr, nil)).Warn, lf.requestTimeout)
	if err != nil {
		return nil, setupError("profile %s: %v", profile, err)
	}
	tokens := id.static
	if id.app != nil {
		tokens = id.app.Session(session)
	}
	client, err := coze.NewClient(p.BaseURL, tokens, coze.WithTimeout(lf.requestTimeout), coze.WithUserAgent("coze-eraser/"+version()))
	if err != nil {
		return nil, setupError("profile %s: %v", profile, err)
	}
	return &profileLister{id: workIdentity{identity: id, client: client}, lister: client}, nil
}

// walker returns a walker over the profile's fleet budget (the one the
// workers' deletions draw on), and the budget's close.
func (l *profileLister) walker(rdb redis.UniversalClient, lf listingFlags) (*discovery.Walker, func(), error) {
	wf := workFlags{rate: lf.rate, burst: 1, requestTimeout: lf.requestTimeout}
	return budgetedWalker(l.lister, rdb, &wf, l.id)
}

// budgetedWalker is a walker of lister that draws on id's fleet budget
// (the one the workers' deletions share), and the budget's close.
func budgetedWalker(lister discovery.Lister, rdb redis.UniversalClient, wf *workFlags, id workIdentity) (*discovery.Walker, func(), error) {
	w := &discovery.Walker{Lister: lister}
	limiter, err := wf.limiterFor(rdb, id)
	if err != nil {
		return nil, nil, err
	}
	if limiter == nil {
		return w, func() {}, nil
	}
	w.Budget = limiter
	return w, limiter.Close, nil
}
