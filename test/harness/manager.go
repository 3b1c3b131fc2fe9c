package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"time"
)

// ManagerProcess is the manager binary running as its own process against
// the local control plane, as it runs in a cluster.
type ManagerProcess struct {
	// ProbeAddr and MetricsAddr are the loopback addresses of /readyz and
	// /metrics.
	ProbeAddr, MetricsAddr string
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// StartManager runs bin with the kubeconfig, free loopback probe and
// metrics addresses and the extra arguments, writes its output to out, and
// waits until /readyz answers.
func StartManager(bin, kubeconfig string, out io.Writer, args ...string) (*ManagerProcess, error) {
	probe, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig,
		"--health-probe-bind-address=" + probe, "--metrics-bind-address=" + metrics}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	// Die with the caller, even if it crashes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start manager: %w", err)
	}
	m := &ManagerProcess{ProbeAddr: probe, MetricsAddr: metrics, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + probe + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("manager exited before it was ready")
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("manager not ready after 60s")
		}
	}
}

// PID is the manager's process ID.
func (m *ManagerProcess) PID() int { return m.cmd.Process.Pid }

// Stop sends SIGTERM, waits up to 15 s, then kills the process.
func (m *ManagerProcess) Stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// FreeLoopbackAddr returns a 127.0.0.1 address with a port free right now.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
