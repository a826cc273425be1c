package oncrpc

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts RPC calls by program, procedure and outcome, e.g.
// filesrv_rpc_calls_total{program="100003",version="3",procedure="7",status="success"}.
// Labels stay bounded whatever clients send: calls to a program or
// procedure not served are counted as program or procedure "other".
type Metrics struct {
	calls *prometheus.CounterVec
}

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
	prog, vers, proc := "other", "other", "other"
	if known {
		prog, vers = strconv.FormatUint(uint64(c.Prog), 10), strconv.FormatUint(uint64(c.Vers), 10)
		if stat != ProcUnavail && c.Proc < 64 {
			proc = strconv.FormatUint(uint64(c.Proc), 10)
		}
	}
	status := statusNames[stat]
	if denied {
		status = "denied"
	} else if status == "" {
		status = "other"
	}
	m.calls.WithLabelValues(prog, vers, proc, status).Inc()
}
