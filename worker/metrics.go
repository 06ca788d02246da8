package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

// Metrics are the worker's Prometheus collectors. No label ever holds a
// conversation id, a log id, a batch name or a session: their number is
// unbounded. The profile label is bounded: profiles come from the worker's
// configuration.
type Metrics struct {
	Deletions       *prometheus.CounterVec
	APIRequests     *prometheus.CounterVec
	APIDuration     *prometheus.HistogramVec
	Retries         *prometheus.CounterVec
	TasksInFlight   prometheus.Gauge
	AuthPaused      *prometheus.GaugeVec
	AuthPauses      *prometheus.CounterVec
	RateLimitPauses *prometheus.CounterVec
	InvalidTasks    prometheus.Counter
	LedgerErrors    prometheus.Counter
	RateLimitWait   *prometheus.HistogramVec
	// CallbackDeliveries counts callback delivery attempts by result:
	// delivered, or why not (see callback.Outcome).
	CallbackDeliveries *prometheus.CounterVec
	// LostOutcomes counts outcomes recorded for a batch that Redis no
	// longer held (it lost its data while the task ran).
	LostOutcomes prometheus.Counter
	// DataLosses counts the times this worker found that Redis lost the
	// ledger's data.
	DataLosses prometheus.Counter
	// Verifications counts the data subjects' batches whose verification
	// this worker ended, by state: passed or failed.
	Verifications *prometheus.CounterVec
	// TasksFed counts the tasks this worker's feeder made from the
	// ledger's pending ids, by queue.
	TasksFed *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deletions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_deletions_total",
			Help: "Conversations that reached a terminal outcome, counted once per batch and id however often a task ran.",
		}, []string{"outcome"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_api_requests_total",
			Help: "Calls to the Coze API by profile, answer class and body code (documented codes, other, or none).",
		}, []string{"profile", "class", "code"}),
		APIDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coze_eraser_api_request_duration_seconds",
			Help:    "Duration of Coze API calls, by answer class.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"class"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_retries_total",
			Help: "Tasks sent back to the queue for another attempt, by reason.",
		}, []string{"reason"}),
		TasksInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coze_eraser_tasks_in_flight",
			Help: "Tasks this worker is processing now, waiting for a turn included.",
		}),
		AuthPaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coze_eraser_auth_paused",
			Help: "1 while the profile's calls are paused because the API rejects its token, else 0.",
		}, []string{"profile"}),
		AuthPauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_auth_pauses_total",
			Help: "Times the profile's calls were paused because the API rejected its token.",
		}, []string{"profile"}),
		RateLimitPauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_rate_limit_pauses_total",
			Help: "Rate-limited answers that paused the profile's calls.",
		}, []string{"profile"}),
		InvalidTasks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coze_eraser_invalid_tasks_total",
			Help: "Tasks archived without a call because their payload was not a valid deletion.",
		}),
		LedgerErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coze_eraser_ledger_errors_total",
			Help: "Outcomes that could not be written to the ledger; the task is retried.",
		}),
		RateLimitWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coze_eraser_rate_limit_wait_seconds",
			Help:    "Time calls waited for a slot of the profile's fleet rate budget and in-flight cap.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"profile"}),
	}
	m.LostOutcomes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coze_eraser_lost_outcomes_total",
		Help: "Outcomes recorded for a batch Redis no longer held: kept in the batch's lost record, not in a proof.",
	})
	m.DataLosses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coze_eraser_redis_data_losses_total",
		Help: "Times this worker found that Redis lost the ledger's data (restarted empty, flushed).",
	})
	reg.MustRegister(m.Deletions, m.APIRequests, m.APIDuration, m.Retries, m.TasksInFlight,
		m.AuthPaused, m.AuthPauses, m.RateLimitPauses, m.InvalidTasks, m.LedgerErrors, m.RateLimitWait,
		m.LostOutcomes, m.DataLosses)
	// Start every series an alert may watch at zero, so that rate() works
	// from the first scrape.
	for _, o := range []ledger.Outcome{ledger.Deleted, ledger.NotFound, ledger.Failed} {
		m.Deletions.WithLabelValues(string(o))
	}
	for _, r := range []string{reasonRateLimited, reasonAuth, reasonTransient, reasonUnknown, reasonWaiting, reasonLedger, reasonProfileBusy, reasonBatchPaused} {
		m.Retries.WithLabelValues(r)
	}
	m.CallbackDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coze_eraser_callback_deliveries_total",
		Help: "Callback delivery attempts by result: delivered, or why not " +
			"(timeout, connection, http_status, redirect, invalid, canceled). Failed ones are retried with backoff.",
	}, []string{"result"})
	m.Verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coze_eraser_verifications_total",
		Help: "Data subjects' batches whose verification listing ended, by state: passed, or failed " +
			"(an id still listed, conversations left unverified, or a listing that could not be read).",
	}, []string{"state"})
	m.TasksFed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coze_eraser_tasks_fed_total",
		Help: "Tasks this worker made from the ledger's pending ids as its queues had room for them, by queue.",
	}, []string{"queue"})
	reg.MustRegister(m.CallbackDeliveries, m.Verifications, m.TasksFed)
	for _, s := range []ledger.VerificationState{ledger.VerificationPassed, ledger.VerificationFailed} {
		m.Verifications.WithLabelValues(string(s))
	}
	for _, o := range callback.Outcomes {
		m.CallbackDeliveries.WithLabelValues(string(o))
	}
	return m
}

// initProfile starts the profile's series that alerts watch at zero, so
// that rate() and "== 1" work from the first scrape.
func (m *Metrics) initProfile(profile string) {
	m.AuthPaused.WithLabelValues(profile).Set(0)
	m.AuthPauses.WithLabelValues(profile)
	m.RateLimitPauses.WithLabelValues(profile)
}

// registerLimiter exports a profile's fleet budget: its configured and
// effective rates.
func (m *Metrics) registerLimiter(reg prometheus.Registerer, profile string, l *ratelimit.Limiter) {
	labels := prometheus.Labels{"profile": profile}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "coze_eraser_rate_limit_configured_requests_per_second",
			Help:        "The profile's configured fleet request rate (--rate, or the profile's rate).",
			ConstLabels: labels,
		}, l.Configured),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "coze_eraser_rate_limit_effective_requests_per_second",
			Help:        "The profile's effective fleet request rate after adapting to the API's pushback, as this worker last saw it.",
			ConstLabels: labels,
		}, l.Effective),
	)
}

// observeFed counts n tasks fed into queue.
func (m *Metrics) observeFed(queue string, n int) { m.TasksFed.WithLabelValues(queue).Add(float64(n)) }

// observeCallback counts one callback delivery attempt.
func (m *Metrics) observeCallback(o callback.Outcome) {
	m.CallbackDeliveries.WithLabelValues(string(o)).Inc()
}

func (m *Metrics) observeCall(profile string, res coze.Result) {
	m.APIRequests.WithLabelValues(profile, string(res.Class), coze.CodeLabel(res.Code, res.HasCode)).Inc()
	m.APIDuration.WithLabelValues(string(res.Class)).Observe(res.Duration.Seconds())
}
