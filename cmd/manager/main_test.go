package main

import (
	"strings"
	"testing"
)

func TestCheckLimits(t *testing.T) {
	if err := checkLimits(50, 100, 4); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, c := range []struct {
		qps     float64
		burst   int
		workers int
		flag    string
	}{
		{0, 100, 4, "--kube-api-qps"},
		{-1, 100, 4, "--kube-api-qps"},
		{50, 0, 4, "--kube-api-burst"},
		{50, 100, 0, "--max-concurrent-reconciles"},
	} {
		err := checkLimits(c.qps, c.burst, c.workers)
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("checkLimits(%v, %d, %d) = %v, want an error naming %s", c.qps, c.burst, c.workers, err, c.flag)
		}
	}
}

// The operator's own image under another name is run as an upstream
// webhook image is: its entrypoint, the manager, gets --cert-reload and
// must hand over to the webhook beside it instead of failing on the flag.
func TestAsWebhook(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"/manager", "--cert-reload"}, "/webhook", true},
		{[]string{"/manager", "--cert-reload=true", "--metrics-bind-address=:8080"}, "/webhook", true},
		{[]string{"/manager", "--leader-elect"}, "", false},
		{[]string{"/manager"}, "", false},
		{[]string{"bin/manager", "--cert-reload"}, "bin/webhook", true},
	} {
		got, ok := asWebhook(tc.args)
		if got != tc.want || ok != tc.ok {
			t.Errorf("asWebhook(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}
