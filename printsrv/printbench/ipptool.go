package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ipptoolTest is one Print-Job test; busy is an allowed status so that
// ipptool goes on, and the plist output says which status each got.
const ipptoolTest = `{
	NAME "Print-Job"
	OPERATION Print-Job
	GROUP operation-attributes-tag
	ATTR charset attributes-charset utf-8
	ATTR language attributes-natural-language en
	ATTR uri printer-uri $uri
	ATTR name requesting-user-name $user
	ATTR mimeMediaType document-format %s
	FILE %s
	STATUS successful-ok
	STATUS successful-ok-ignored-or-substituted-attributes
	STATUS server-error-busy
}
`

// writeIpptoolFile writes a test file with n copies of the Print-Job test.
func writeIpptoolFile(name string, n int, doc, format string) error {
	one := fmt.Sprintf(ipptoolTest, format, doc)
	if err := os.WriteFile(name, []byte(strings.Repeat(one, n)), 0o644); err != nil {
		return fmt.Errorf("write ipptool test: %w", err)
	}
	return nil
}

// runIpptool runs ipptool over one connection with the test file against
// t and returns the statuses it saw and the wall time it took.
func runIpptool(ctx context.Context, t *target, testFile string) (counts, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ipptool", "-X", "-I", "-T", "30", t.uri, testFile)
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	c := parseIpptoolPlist(out.Bytes())
	if err != nil && c.accepted+c.busy+c.failed == 0 {
		return c, wall, fmt.Errorf("ipptool against %s: %w: %s", t.name, err, strings.TrimSpace(errOut.String()))
	}
	return c, wall, nil
}

// parseIpptoolPlist counts the StatusCode of every test in ipptool's -X
// (plist) output.
func parseIpptoolPlist(b []byte) counts {
	var c counts
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "<key>StatusCode</key>" || i+1 >= len(lines) {
			continue
		}
		v := strings.TrimSpace(lines[i+1])
		v = strings.TrimSuffix(strings.TrimPrefix(v, "<string>"), "</string>")
		switch {
		case strings.HasPrefix(v, "successful-ok"):
			c.accepted++
		case v == "server-error-busy":
			c.busy++
		default:
			c.failed++
			if c.firstErr == "" {
				c.firstErr = v
			}
		}
	}
	return c
}
