package main

import "testing"

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
