package authz

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/extauthz/extauthz/policy"
)

// Metrics are the Prometheus series the server exports. A nil *Metrics
// records nothing.
type Metrics struct {
	decisions *prometheus.CounterVec
	// series caches decisions' counter for each label set seen, so that a
	// decision does not hash its labels: a few dozen sets at most (results ×
	// reasons × route classes), each stored once.
	series     sync.Map // decisionLabels -> prometheus.Counter
	latency    prometheus.Histogram
	keyReloads *prometheus.CounterVec
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extauthz",
			Name:      "decisions_total",
			Help:      "Authorization decisions by result (allow, deny), deny reason, route class and route profile (\"\" for kka1).",
		}, []string{"result", "reason", "route_class", "profile"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "extauthz",
			Name:      "decision_duration_seconds",
			Help:      "Time to decide one request (capability open, identity check, route classification).",
			Buckets:   []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025},
		}),
		keyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extauthz",
			Name:      "key_reloads_total",
			Help:      "Key ring reloads by result (ok, error).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.keyReloads} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.exportKnownSeries()
	return m, nil
}

// exportKnownSeries creates every known label set at 0, so that a dashboard
// panel or an alert rule sees a series before the first event (Prometheus
// instrumentation practice): an allow for each route class, a deny for each
// reason a check can give, and both key reload results. The series of
// route profiles follow each load (setProfiles).
func (m *Metrics) exportKnownSeries() {
	m.exportDecisions("", policy.RouteClasses())
	m.keyReloads.WithLabelValues("ok")
	m.keyReloads.WithLabelValues("error")
}

// exportDecisions creates at 0 the decision series of one profile ("" for
// kka1): an allow for each of its route classes, a deny for each reason.
func (m *Metrics) exportDecisions(profile string, classes []policy.RouteClass) {
	for _, class := range classes {
		m.decisions.WithLabelValues("allow", string(ReasonNone), string(class), profile)
	}
	for reason := range reasons {
		if reason != ReasonInvalidTargets { // issuing only, never a check
			m.decisions.WithLabelValues("deny", string(reason), "", profile)
		}
	}
}

// setProfiles exports at 0 the decision series of each profile of a
// load. Those of profiles no longer loaded stay, with their counts.
func (m *Metrics) setProfiles(list []*policy.Profile) {
	if m == nil {
		return
	}
	for _, pr := range list {
		m.exportDecisions(pr.Name(), pr.RouteClasses())
	}
}

// observe counts one decision. profile is the label of a profile
// capability's loaded profile, "" otherwise.
func (m *Metrics) observe(result string, reason Reason, class policy.RouteClass, profile string, elapsed time.Duration) {
	if m == nil {
		return
	}
	key := decisionLabels{result, reason, class, profile}
	c, ok := m.series.Load(key)
	if !ok {
		c, _ = m.series.LoadOrStore(key, m.decisions.WithLabelValues(result, string(reason), string(class), profile))
	}
	c.(prometheus.Counter).Inc()
	m.latency.Observe(elapsed.Seconds())
}

type decisionLabels struct {
	result  string
	reason  Reason
	class   policy.RouteClass
	profile string
}

// KeyReload records one key ring reload attempt.
func (m *Metrics) KeyReload(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.keyReloads.WithLabelValues(result).Inc()
}
