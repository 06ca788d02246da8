package sweep

import "github.com/prometheus/client_golang/prometheus"

// Metrics are a scheduler's Prometheus collectors. The sweep label is a
// sweep's name, from the sweeps file: bounded.
type Metrics struct {
	// Runs counts the runs this worker made, by result: success or
	// failure. Summed over the fleet, it counts the ticks run.
	Runs *prometheus.CounterVec
	// LastSuccess is when a run of the sweep last succeeded on any
	// worker, as the sweep's record in Redis says; until one has, when
	// the fleet first loaded the sweep.
	LastSuccess *prometheus.GaugeVec
	// Interval is the longest time between two ticks of the sweep's
	// schedule: the alert on a sweep that stopped succeeding waits twice
	// as long.
	Interval *prometheus.GaugeVec
}

// The results of [Metrics.Runs].
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coze_eraser_sweep_runs_total",
			Help: "Scheduled sweep runs this worker made, by sweep and result (success, failure: a listing or Redis error).",
		}, []string{"sweep", "result"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coze_eraser_sweep_last_success_timestamp_seconds",
			Help: "When a run of the sweep last succeeded on any worker (Unix time); until one has, when the fleet first loaded it.",
		}, []string{"sweep"}),
		Interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coze_eraser_sweep_interval_seconds",
			Help: "The longest time between two ticks of the sweep's schedule.",
		}, []string{"sweep"}),
	}
	reg.MustRegister(m.Runs, m.LastSuccess, m.Interval)
	return m
}

// initSweep starts the sweep's series, so that alerts see them from the
// first scrape.
func (m *Metrics) initSweep(s Scheduled) {
	m.Runs.WithLabelValues(s.Name, ResultSuccess)
	m.Runs.WithLabelValues(s.Name, ResultFailure)
	m.Interval.WithLabelValues(s.Name).Set(s.Interval().Seconds())
}
