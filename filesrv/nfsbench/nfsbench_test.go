package main

import "testing"

func TestURL(t *testing.T) {
	s := &server{base: "nfs://127.0.0.1/export", query: "?nfsport=1&mountport=2&version=3"}
	if got, want := s.url("a/b.bin"), "nfs://127.0.0.1/export/a/b.bin?nfsport=1&mountport=2&version=3"; got != want {
		t.Errorf("url = %q, want %q", got, want)
	}
	if got, want := s.url(""), "nfs://127.0.0.1/export?nfsport=1&mountport=2&version=3"; got != want {
		t.Errorf("root url = %q, want %q", got, want)
	}
}
