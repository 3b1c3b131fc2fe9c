package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
)

// InProcessManager is the operator's manager running in the test's own
// process (manager.New, as cmd/manager builds it), so that a suite can
// wrap its transport, read its metrics registry or stop it at will.
type InProcessManager struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// RunManager builds the manager for cfg with opts and starts it.
func RunManager(cfg *rest.Config, opts manager.Options) (*InProcessManager, error) {
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &InProcessManager{cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	return m, nil
}

// Stop stops the manager and returns what Start returned; later calls
// return the same. A manager that does not stop within 30 s is an error.
func (m *InProcessManager) Stop() error {
	m.once.Do(func() {
		m.cancel()
		select {
		case m.err = <-m.done:
		case <-time.After(30 * time.Second):
			m.err = fmt.Errorf("the manager did not stop within 30s")
		}
	})
	return m.err
}
