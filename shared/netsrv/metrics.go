package netsrv

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what a Server does, labelled by transport (tcp, udp,
// unix, unixgram). A nil *Metrics counts nothing.
type Metrics struct {
	connsActive   *prometheus.GaugeVec
	connsTotal    *prometheus.CounterVec
	connsRejected *prometheus.CounterVec
	requests      *prometheus.CounterVec
	requestErrors *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	received      *prometheus.CounterVec
	sent          *prometheus.CounterVec
	tooLarge      *prometheus.CounterVec
	panics        prometheus.Counter

	byTransport map[string]*transportMetrics
}

// NewMetrics registers the server metrics on reg under the daemon's
// namespace, e.g. tsserv_connections_active.
func NewMetrics(reg prometheus.Registerer, namespace string) *Metrics {
	label := []string{"transport"}
	m := &Metrics{
		connsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "connections_active", Help: "Stream connections being served."}, label),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "connections_total", Help: "Stream connections accepted and served."}, label),
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "connections_rejected_total", Help: "Stream connections closed at once because max_conns was reached."}, label),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "requests_total", Help: "Requests served (one per datagram or stream message)."}, label),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "request_errors_total", Help: "Requests whose handler returned an error."}, label),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "request_duration_seconds", Help: "Time to serve one request.",
			Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5}}, label),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "received_bytes_total", Help: "Bytes read from clients."}, label),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "sent_bytes_total", Help: "Bytes written to clients."}, label),
		tooLarge: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "messages_rejected_total", Help: "Messages refused for exceeding max_message_bytes."}, label),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "panics_total", Help: "Handler panics recovered."}),
		byTransport: make(map[string]*transportMetrics),
	}
	reg.MustRegister(m.connsActive, m.connsTotal, m.connsRejected, m.requests, m.requestErrors,
		m.duration, m.received, m.sent, m.tooLarge, m.panics)
	for _, t := range []string{"tcp", "udp", "unix", "unixgram"} {
		m.byTransport[t] = m.newTransport(t)
	}
	return m
}

func (m *Metrics) newTransport(t string) *transportMetrics {
	return &transportMetrics{
		active:   m.connsActive.WithLabelValues(t),
		total:    m.connsTotal.WithLabelValues(t),
		rejected: m.connsRejected.WithLabelValues(t),
		requests: m.requests.WithLabelValues(t),
		errors:   m.requestErrors.WithLabelValues(t),
		duration: m.duration.WithLabelValues(t),
		rxBytes:  m.received.WithLabelValues(t),
		txBytes:  m.sent.WithLabelValues(t),
		tooLarge: m.tooLarge.WithLabelValues(t),
	}
}

func (m *Metrics) panic() {
	if m != nil {
		m.panics.Inc()
	}
}

// forTransport returns the children for one transport, looked up once per
// listener so the hot path does no label hashing.
func (m *Metrics) forTransport(t string) *transportMetrics {
	if m == nil {
		return nil
	}
	return m.byTransport[t] // nil for another transport: not counted
}

// transportMetrics is one transport's children; nil counts nothing.
type transportMetrics struct {
	active                     prometheus.Gauge
	total, rejected            prometheus.Counter
	requests, errors           prometheus.Counter
	duration                   prometheus.Observer
	rxBytes, txBytes, tooLarge prometheus.Counter
}

func (t *transportMetrics) opened() {
	if t != nil {
		t.active.Inc()
		t.total.Inc()
	}
}

func (t *transportMetrics) closed() {
	if t != nil {
		t.active.Dec()
	}
}

func (t *transportMetrics) rejectedConn() {
	if t != nil {
		t.rejected.Inc()
	}
}

func (t *transportMetrics) rejectedMessage() {
	if t != nil {
		t.tooLarge.Inc()
	}
}

func (t *transportMetrics) received(n int) {
	if t != nil && n > 0 {
		t.rxBytes.Add(float64(n))
	}
}

func (t *transportMetrics) sent(n int) {
	if t != nil && n > 0 {
		t.txBytes.Add(float64(n))
	}
}

func (t *transportMetrics) request(start time.Time, err error) {
	if t == nil {
		return
	}
	t.requests.Inc()
	if err != nil {
		t.errors.Inc()
	}
	t.duration.Observe(time.Since(start).Seconds())
}
