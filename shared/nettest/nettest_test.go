package nettest

import "testing"

func TestNeedToolFindsAProgram(t *testing.T) {
	if NeedTool(t, "sh") == "" {
		t.Error("no path for sh")
	}
}
