package main

import (
	"context"
	"testing"
	"time"
)

// TestNullServer checks that the null server accepts Print-Jobs from the
// Go client, as the ceiling measurement needs.
func TestNullServer(t *testing.T) {
	tg, n, err := startNullServer()
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop()
	c := newIPPClient(tg, 2)
	defer c.close()
	if err := c.getPrinterAttributes(); err != nil {
		t.Fatal(err)
	}
	cn := c.printJobs(context.Background(), 2, 100*time.Millisecond, []byte("%PDF-1.4\n"), "application/pdf")
	if cn.accepted == 0 || cn.busy != 0 || cn.failed != 0 {
		t.Errorf("null server: %+v", cn)
	}
}

func TestParseIpptoolPlist(t *testing.T) {
	out := `<dict>
<key>StatusCode</key>
<string>successful-ok</string>
</dict><dict>
<key>StatusCode</key>
<string>server-error-busy</string>
</dict><dict>
<key>StatusCode</key>
<string>successful-ok-ignored-or-substituted-attributes</string>
</dict><dict>
<key>StatusCode</key>
<string>client-error-not-found</string>
</dict>`
	c := parseIpptoolPlist([]byte(out))
	if c.accepted != 2 || c.busy != 1 || c.failed != 1 || c.firstErr != "client-error-not-found" {
		t.Errorf("got %+v", c)
	}
}

func TestGenReader(t *testing.T) {
	g := &genReader{left: 1000}
	buf := make([]byte, 300)
	var total int
	for {
		n, err := g.Read(buf)
		total += n
		if err != nil {
			break
		}
	}
	if total != 1000 {
		t.Errorf("read %d bytes, want 1000", total)
	}
}
