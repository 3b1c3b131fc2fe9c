package controllers_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var (
	env       *harness.Env
	k8s       client.Client
	cancelMgr context.CancelFunc
	mgrDone   chan error
	// writes counts the manager's write requests (anything but GET, LIST
	// and WATCH) to the API server.
	writes      atomic.Int64
	requests    = &harness.RequestRecorder{}
	debugWrites atomic.Bool
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "Controllers Suite")
}

// countingTransport counts write requests.
type countingTransport struct{ next http.RoundTripper }

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		writes.Add(1)
		if debugWrites.Load() {
			GinkgoWriter.Printf("WRITE %s %s\n", req.Method, req.URL.Path)
		}
	}
	return c.next.RoundTrip(req)
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.102.0/24"})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client

	// The manager runs as the operator's ServiceAccount, with only the RBAC
	// config/default grants it; its requests are counted and recorded.
	cfg, err := env.InstallOperatorRBAC(context.Background())
	Expect(err).NotTo(HaveOccurred())
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return requests.Wrap(countingTransport{next: rt}) }
	mgr, err := manager.New(cfg, manager.Options{})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancelMgr = cancel
	mgrDone = make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		mgrDone <- mgr.Start(ctx)
	}()
})

var _ = AfterSuite(func() {
	// Stop the control plane whatever the checks below find: a failed
	// assertion ends this function, and would leave it running.
	DeferCleanup(func() {
		if env != nil {
			Expect(env.Stop()).To(Succeed())
		}
	})
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone, 30*time.Second).Should(Receive(BeNil()))
	}
	// A focused run exercises only some permissions.
	if suite, _ := GinkgoConfiguration(); len(suite.FocusStrings) == 0 && len(suite.FocusFiles) == 0 {
		Expect(requests.Missing(harness.SuiteAccounts)).To(BeEmpty(),
			"permissions of config/rbac/role.yaml that harness.PermissionUse assigns to this suite but no request needed")
	}
})

// reconciles returns how many reconciles the named controller finished.
func reconciles(controller string) float64 {
	n, err := harness.Reconciles(controller)
	Expect(err).NotTo(HaveOccurred())
	return n
}
