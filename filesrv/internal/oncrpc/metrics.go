package oncrpc

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts RPC calls by program, procedure and outcome, e.g.
// filesrv_rpc_calls_total{program="100003",version="3",procedure="7",status="success"}.
// Labels stay bounded whatever clients send: calls to a program or
// procedure not served are counted as program or procedure "other".
type Metrics struct {
	calls *prometheus.CounterVec
	// counters caches the counter of each label set seen (a metricKey),
	// so a call costs no label formatting or hashing.
	counters sync.Map
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
	m := &Metrics{calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "rpc_calls_total", Help: "RPC calls answered, by program, version, procedure and accept status."},
		[]string{"program", "version", "procedure", "status"})}
	reg.MustRegister(m.calls)
	return m
}

// statusNames are the accept_stat label values; "denied" is MSG_DENIED.
var statusNames = map[AcceptStat]string{
	Success: "success", ProgUnavail: "prog_unavail", ProgMismatch: "prog_mismatch",
	ProcUnavail: "proc_unavail", GarbageArgs: "garbage_args", SystemErr: "system_err",
}

// observe counts one call; known reports whether the program version is served.
func (m *Metrics) observe(c *Call, known bool, stat AcceptStat, denied bool) {
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
	if ctr, ok := m.counters.Load(k); ok {
		ctr.(prometheus.Counter).Inc()
		return
	}
	label := func(v uint32) string {
		if v == otherLabel {
			return "other"
		}
		return strconv.FormatUint(uint64(v), 10)
	}
	status := statusNames[stat]
	if denied {
		status = "denied"
	} else if status == "" {
		status = "other"
	}
	ctr := m.calls.WithLabelValues(label(k.prog), label(k.vers), label(k.proc), status)
	m.counters.Store(k, ctr)
	ctr.Inc()
}
