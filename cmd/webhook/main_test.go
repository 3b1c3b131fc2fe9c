package main

import (
	"strings"
	"testing"
	"time"
)

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// TestParseEnvUpstreamInterface: the variable names and defaults of the
// upstream webhook, so that its Deployment runs this image unchanged.
func TestParseEnvUpstreamInterface(t *testing.T) {
	s, err := parseEnv(lookupIn(map[string]string{"TLS_CRT": "/tls/crt", "TLS_KEY": "/tls/key"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.certFile != "/tls/crt" || s.keyFile != "/tls/key" || s.port != 443 || s.logLevel != "info" || s.randomHostname {
		t.Errorf("defaults: %+v", s)
	}
	if s.qps != defaultQPS || s.burst != defaultBurst || s.authzCacheTTL != 2*time.Second || s.authzCacheSize != 4096 {
		t.Errorf("client and decision cache defaults: %+v", s)
	}
	s, err = parseEnv(lookupIn(map[string]string{
		"TLS_CRT": "/tls/crt", "TLS_KEY": "/tls/key", "HTTPS_PORT": "8443", "LOG_LEVEL": "DEBUG",
		"RANDOM_HOSTNAME": "true", "QPS": "20", "BURST": "40", "AUTHZ_CACHE_TTL": "500ms", "AUTHZ_CACHE_SIZE": "10",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.port != 8443 || s.logLevel != "debug" || !s.randomHostname || s.qps != 20 || s.burst != 40 || len(s.warnings) != 0 ||
		s.authzCacheTTL != 500*time.Millisecond || s.authzCacheSize != 10 {
		t.Errorf("set: %+v", s)
	}
	// 0 keeps no decision: cluster.Run reads a negative TTL so.
	s, err = parseEnv(lookupIn(map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "AUTHZ_CACHE_TTL": "0"}))
	if err != nil || s.authzCacheTTL >= 0 {
		t.Errorf("AUTHZ_CACHE_TTL=0: %+v, %v; want a negative TTL", s, err)
	}
}

func TestParseEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TLS_KEY": "k"}, "environment variable TLS_CRT is required"},
		{map[string]string{"TLS_CRT": "c"}, "environment variable TLS_KEY is required"},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "HTTPS_PORT": "https"}, `HTTPS_PORT "https" is not a port number`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "HTTPS_PORT": "70000"}, `HTTPS_PORT "70000" is not a port number`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "RANDOM_HOSTNAME": "yes please"}, `RANDOM_HOSTNAME "yes please" is not a boolean`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "BURST": "-1"}, `BURST "-1" is not a positive integer`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "AUTHZ_CACHE_TTL": "2"}, `AUTHZ_CACHE_TTL "2" is not a duration`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "AUTHZ_CACHE_TTL": "-1s"}, `AUTHZ_CACHE_TTL "-1s" is not a duration`},
		{map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "AUTHZ_CACHE_SIZE": "0"}, `AUTHZ_CACHE_SIZE "0" is not a positive integer`},
	} {
		if _, err := parseEnv(lookupIn(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: err = %v, want %q", tc.env, err, tc.want)
		}
	}
	s, err := parseEnv(lookupIn(map[string]string{"TLS_CRT": "c", "TLS_KEY": "k", "LOG_LEVEL": "verbose"}))
	if err != nil || s.logLevel != "info" || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], `unknown LOG_LEVEL "verbose"`) {
		t.Errorf("unknown LOG_LEVEL: %+v, %v; want info and a warning", s, err)
	}
}
