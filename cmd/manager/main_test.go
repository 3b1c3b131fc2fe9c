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
