// Package harness starts the local control plane every test suite and the
// demo run against: a real kube-apiserver and etcd (controller-runtime's
// envtest) plus kube-controller-manager, so that garbage collection,
// namespace deletion and Deployments behave as in a cluster. It installs the
// project's CRDs and the GMSACredentialSpec CRD.
//
// The binaries come from bin/k8s/<version>-<os>-<arch>, built by
// `make control-plane` (hack/build-control-plane.sh).
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
)

// KubeVersion is the version of the control plane binaries.
const KubeVersion = "1.37.1"

// DefaultServiceCIDR keeps every Service ClusterIP on loopback, so that the
// API server can call a Service-based webhook that a test serves on
// 127.0.100.x. Never use envtest's default 10.0.0.0/24 here.
const DefaultServiceCIDR = "127.0.100.0/24"

const modulePath = "github.com/gmsa-operator/gmsa-operator"

// Options configure Start. The zero value is what most suites want.
type Options struct {
	// ServiceCIDR is the API server's service-cluster-ip-range; it must be
	// inside 127.0.0.0/8. Defaults to DefaultServiceCIDR. Suites that run in
	// parallel processes should use distinct ranges.
	ServiceCIDR string
	// NoControllerManager skips kube-controller-manager.
	NoControllerManager bool
	// ExtraCRDPaths are further CRD files or directories to install, such
	// as cert-manager's.
	ExtraCRDPaths []string
	// NoCredentialSpecCRD leaves the GMSACredentialSpec CRD out, for suites
	// where the operator installs it.
	NoCredentialSpecCRD bool
	// Verbose streams the control plane's output to stderr.
	Verbose bool
}

// Env is a running local control plane.
type Env struct {
	// Config authenticates as a cluster administrator.
	Config *rest.Config
	// Client is a client with the operator's scheme, as an administrator.
	Client client.Client
	// Kubeconfig is the path of an administrator kubeconfig file, for
	// kubectl and for processes such as the manager.
	Kubeconfig string
	// Dir is a private directory removed by Stop.
	Dir string

	env      *envtest.Environment
	kcm      *exec.Cmd
	kcmDone  chan error
	kcmLog   *os.File
	stopOnce bool
}

// RepoRoot finds the root of this repository from the working directory
// (tests run in their package's directory) or from $GMSA_OPERATOR_ROOT.
func RepoRoot() (string, error) {
	if r := os.Getenv("GMSA_OPERATOR_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found: run from inside the repository or set GMSA_OPERATOR_ROOT")
		}
		dir = parent
	}
}

// AssetsDir returns the directory of the control plane binaries:
// $KUBEBUILDER_ASSETS if set, else bin/k8s/<version>-<os>-<arch>.
func AssetsDir(root string) string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(root, "bin", "k8s", fmt.Sprintf("%s-%s-%s", KubeVersion, runtime.GOOS, runtime.GOARCH))
}

// Start starts etcd, kube-apiserver and (unless disabled)
// kube-controller-manager, installs the CRDs and waits until they are
// established and the controller manager is working.
func Start(opts Options) (_ *Env, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := AssetsDir(root)
	for _, b := range []string{"kube-apiserver", "etcd", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing in %s: run `make control-plane`", b, assets)
		}
	}
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = DefaultServiceCIDR
	}
	credspecCRD, err := credspeccrd.CRD()
	if err != nil {
		return nil, err
	}
	crds := []*apiextensionsv1.CustomResourceDefinition{credspecCRD}
	if opts.NoCredentialSpecCRD {
		crds = nil
	}
	dir, err := os.MkdirTemp("", "gmsa-harness-")
	if err != nil {
		return nil, err
	}

	e := &Env{Dir: dir}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		Scheme:                scheme.New(),
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              append([]string{filepath.Join(root, "config", "crd", "bases")}, opts.ExtraCRDPaths...),
			CRDs:               crds,
			ErrorIfPathMissing: true,
		},
		AttachControlPlaneOutput: opts.Verbose,
	}
	e.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", opts.ServiceCIDR)
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()

	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	e.Config.QPS, e.Config.Burst = 200, 400
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.env.Scheme}); err != nil {
		return nil, err
	}
	admin, err := e.env.ControlPlane.AddUser(envtest.User{Name: "harness-admin", Groups: []string{"system:masters"}}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	if !opts.NoControllerManager {
		if err := e.startControllerManager(filepath.Join(assets, "kube-controller-manager"), opts.Verbose); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// ControllerManagerControllers are the kube-controller-manager controllers
// the harness runs: owner-reference garbage collection, namespace deletion,
// Deployments and ReplicaSets, default service accounts, and EndpointSlices.
var ControllerManagerControllers = []string{"garbagecollector", "namespace", "deployment", "replicaset", "serviceaccount", "endpointslice"}

func (e *Env) startControllerManager(bin string, verbose bool) error {
	logPath := filepath.Join(e.Dir, "kube-controller-manager.log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	e.kcmLog = f
	ctrls := ""
	for i, c := range ControllerManagerControllers {
		if i > 0 {
			ctrls += ","
		}
		ctrls += c
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+e.Kubeconfig,
		"--controllers="+ctrls,
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-gc-syncs=10",
		"--v=1",
	)
	cmd.Stdout, cmd.Stderr = f, f
	if verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	// Die with the test process, even if it crashes before Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	e.kcm = cmd
	e.kcmDone = make(chan error, 1)
	go func() { e.kcmDone <- cmd.Wait() }()

	// The serviceaccount controller creates default/default: once it is
	// there, kube-controller-manager is up and running its controllers.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		sa := &corev1.ServiceAccount{}
		if err := e.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "default"}, sa); err == nil {
			return nil
		}
		select {
		case err := <-e.kcmDone:
			e.kcm = nil
			return fmt.Errorf("kube-controller-manager exited (%v); log: %s", err, logPath)
		case <-ctx.Done():
			return fmt.Errorf("kube-controller-manager did not start within 90s; log: %s", logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ControllerManagerPID returns the PID of kube-controller-manager, or 0.
func (e *Env) ControllerManagerPID() int {
	if e.kcm == nil || e.kcm.Process == nil {
		return 0
	}
	return e.kcm.Process.Pid
}

// Stop stops kube-controller-manager (by its PID), then the API server and
// etcd, and removes Dir.
func (e *Env) Stop() error {
	if e.stopOnce {
		return nil
	}
	e.stopOnce = true
	var errs []error
	if e.kcm != nil && e.kcm.Process != nil {
		_ = syscall.Kill(-e.kcm.Process.Pid, syscall.SIGTERM)
		select {
		case <-e.kcmDone:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-e.kcm.Process.Pid, syscall.SIGKILL)
			<-e.kcmDone
		}
	}
	if e.kcmLog != nil {
		_ = e.kcmLog.Close()
	}
	if e.env != nil {
		if err := e.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop kube-apiserver and etcd: %w", err))
		}
	}
	if e.Dir != "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// ModuleDir returns the directory of a module of go.mod's build list in the
// module cache (it holds, for example, cert-manager's and OLM's CRDs).
func ModuleDir(module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find module %s: %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// CertManagerCRDs returns the directory of cert-manager's CRDs (deploy/crds)
// at the version go.mod pins.
func CertManagerCRDs() (string, error) {
	dir, err := ModuleDir("github.com/cert-manager/cert-manager")
	return filepath.Join(dir, "deploy", "crds"), err
}

// OLMCRDs returns the directory of OLM's CRDs (ClusterServiceVersion and
// others) at the operator-framework/api version go.mod pins.
func OLMCRDs() (string, error) {
	dir, err := ModuleDir("github.com/operator-framework/api")
	return filepath.Join(dir, "crds"), err
}

// OperatorServiceAccount is the operator's ServiceAccount as config/default
// installs it.
const (
	OperatorNamespace      = "gmsa-operator-system"
	OperatorServiceAccount = "gmsa-operator-controller-manager"
)

// InstallOperatorRBAC renders config/default with kubectl kustomize and
// creates its Namespace, ServiceAccount and RBAC objects (not the CRDs,
// which Start installs, nor the Deployment), and returns a rest.Config that
// impersonates the operator's ServiceAccount: a manager run with it has
// exactly the permissions the shipped RBAC grants.
func (e *Env) InstallOperatorRBAC(ctx context.Context) (*rest.Config, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(filepath.Join(AssetsDir(root), "kubectl"), "kustomize", filepath.Join(root, "config", "default")).Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize config/default: %w", err)
	}
	objs, err := manifest.Decode(string(out))
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := e.Client.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("create %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + OperatorNamespace + ":" + OperatorServiceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + OperatorNamespace, "system:authenticated"},
	}
	return cfg, nil
}

// Reconciles is how many reconciles the named controller of a manager in
// this process has finished (controller-runtime's metrics registry).
func Reconciles(controller string) (float64, error) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total, nil
}
