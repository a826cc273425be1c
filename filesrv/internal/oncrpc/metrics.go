package oncrpc

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts RPC calls by program, procedure and outcome, e.g.
// filesrv_rpc_calls_total{program="100003",version="3",procedure="7",status="success"},
// and times the calls of the procedures served, e.g.
// filesrv_rpc_call_duration_seconds{program="100003",version="3",procedure="21"}
// (COMMIT: how long the disk takes to sync). Labels stay bounded whatever
// clients send: calls to a program or procedure not served are counted
// as program or procedure "other", and not timed.
type Metrics struct {
	calls     *prometheus.CounterVec
	durations *prometheus.HistogramVec
	// counters caches the metrics of each label set seen (a metricKey),
	// so a call costs no label formatting or hashing.
	counters sync.Map
}

// callMetrics are the metrics one call updates.
type callMetrics struct {
	calls    prometheus.Counter
	duration prometheus.Observer // nil: not timed
}

// metricKey is a label set in numbers: what observe reduces a call to.
type metricKey struct {
	prog, vers, proc uint32 // 1<<32-1: "other"
	stat             AcceptStat
	denied           bool
}

const otherLabel = ^uint32(0)

// NewMetrics registers the RPC metrics on reg under namespace.
func NewMetrics(reg prometheus.Registerer, namespace string) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "rpc_calls_total", Help: "RPC calls answered, by program, version, procedure and accept status."},
			[]string{"program", "version", "procedure", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "rpc_call_duration_seconds", Help: "Time the handlers of the procedures served took, by program, version and procedure.",
			// 25 µs (a cached GETATTR) to 3.3 s (a COMMIT behind a busy disk).
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18)},
			[]string{"program", "version", "procedure"}),
	}
	reg.MustRegister(m.calls, m.durations)
	return m
}

// statusNames are the accept_stat label values; "denied" is MSG_DENIED.
var statusNames = map[AcceptStat]string{
	Success: "success", ProgUnavail: "prog_unavail", ProgMismatch: "prog_mismatch",
	ProcUnavail: "proc_unavail", GarbageArgs: "garbage_args", SystemErr: "system_err",
}

// observe counts one call; known reports whether the program version is
// served, and d is how long its handler took.
func (m *Metrics) observe(c *Call, known bool, stat AcceptStat, denied bool, d time.Duration) {
	if m == nil {
		return
	}
	k := metricKey{prog: otherLabel, vers: otherLabel, proc: otherLabel, stat: stat, denied: denied}
	if known {
		k.prog, k.vers = c.Prog, c.Vers
		if stat != ProcUnavail && c.Proc < 64 {
			k.proc = c.Proc
		}
	}
	if _, ok := statusNames[stat]; !ok || denied {
		k.stat = AcceptStat(otherLabel) // one label value for all of them
	}
	cm, ok := m.counters.Load(k)
	if !ok {
		cm = m.newCallMetrics(k)
		m.counters.Store(k, cm)
	}
	cm.(*callMetrics).calls.Inc()
	if obs := cm.(*callMetrics).duration; obs != nil {
		obs.Observe(d.Seconds())
	}
}

// newCallMetrics looks up the metrics of the label set k.
func (m *Metrics) newCallMetrics(k metricKey) *callMetrics {
	label := func(v uint32) string {
		if v == otherLabel {
			return "other"
		}
		return strconv.FormatUint(uint64(v), 10)
	}
	status := statusNames[k.stat]
	if k.denied {
		status = "denied"
	} else if status == "" {
		status = "other"
	}
	cm := &callMetrics{calls: m.calls.WithLabelValues(label(k.prog), label(k.vers), label(k.proc), status)}
	if k.proc != otherLabel {
		cm.duration = m.durations.WithLabelValues(label(k.prog), label(k.vers), label(k.proc))
	}
	return cm
}
