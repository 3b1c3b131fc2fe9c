package harness_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var env *harness.Env

func TestHarness(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Harness Suite")
}

var _ = BeforeSuite(func() {
	var err error
	env, err = harness.Start(harness.Options{})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		pid := env.ControllerManagerPID()
		Expect(env.Stop()).To(Succeed())
		if pid > 0 {
			// Stopped by its PID: the process is gone.
			Expect(processAlive(pid)).To(BeFalse(), "kube-controller-manager still running after Stop")
		}
	}
})

func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie ("Z") has exited.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] != 'Z'
		}
	}
	return true
}

var _ = Describe("the local control plane", func() {
	ctx := context.Background()

	It("serves the project's CRDs and the GMSACredentialSpec CRD, established", func() {
		for _, name := range []string{"gmsastacks.gmsa.io", "gmsaaccounts.gmsa.io", "gmsacredentialspecs.windows.k8s.io"} {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed(), name)
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			Expect(established).To(BeTrue(), "%s is not Established", name)
		}
	})

	It("gives Services loopback ClusterIPs", func() {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "loopback", Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}},
		}
		Expect(env.Client.Create(ctx, svc)).To(Succeed())
		Expect(svc.Spec.ClusterIP).To(HavePrefix("127.0.100."))
	})

	It("garbage collects an object after its owner is deleted", func() {
		owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: "default"}}
		Expect(env.Client.Create(ctx, owner)).To(Succeed())
		dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: "dependent", Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
		}}
		Expect(env.Client.Create(ctx, dependent)).To(Succeed())

		Expect(env.Client.Delete(ctx, owner)).To(Succeed())
		Eventually(func() bool {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(dependent), &corev1.ConfigMap{})
			return apierrors.IsNotFound(err)
		}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the dependent ConfigMap was not garbage collected")
	})

	It("finishes deleting a namespace with objects in it", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}
		Expect(env.Client.Create(ctx, ns)).To(Succeed())
		Expect(env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "doomed"}})).To(Succeed())
		Expect(env.Client.Delete(ctx, ns)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: "doomed"}, &corev1.Namespace{}))
		}, 60*time.Second, 250*time.Millisecond).Should(BeTrue(), "the namespace never finished deleting")
	})

	It("writes an administrator kubeconfig that kubectl can use", func() {
		root, err := harness.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		kubectl := harness.AssetsDir(root) + "/kubectl"
		out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "auth", "can-i", "create", "gmsastacks.gmsa.io", "--all-namespaces").Output()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(Equal("yes\n"))
	})
})
