// Package metricsauth checks that, with secure metrics, the manager serves
// /metrics only to callers the API server authenticates and authorizes.
package metricsauth_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

func TestMetricsAuth(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Secure metrics Suite")
}

var _ = Describe("secure metrics", func() {
	It("answers 401 without a token, 403 to a service account without the metrics-reader role, 200 with it", func() {
		env, err := harness.Start(harness.Options{NoControllerManager: true, ServiceCIDR: "127.0.105.0/24"})
		Expect(err).NotTo(HaveOccurred())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		DeferCleanup(func() error {
			// Stop the manager before the API server it watches.
			cancel()
			<-done
			return env.Stop()
		})

		addr, err := harness.FreeLoopbackAddr()
		Expect(err).NotTo(HaveOccurred())
		mgr, err := manager.New(env.Config, manager.Options{MetricsAddr: addr, SecureMetrics: true})
		if err != nil {
			close(done) // nothing to wait for at cleanup
		}
		Expect(err).NotTo(HaveOccurred())
		go func() {
			defer GinkgoRecover()
			defer close(done)
			Expect(mgr.Start(ctx)).To(Succeed())
		}()

		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		token := func(name string) string {
			_, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return tr.Status.Token
		}
		scraper, stranger := token("prometheus"), token("stranger")
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
			Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: "prometheus"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// The serving certificate is self-signed: this test checks who may
		// read, not the certificate.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		status := func(tok string) func() int {
			return func() int {
				req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := c.Do(req)
				if err != nil {
					return 0
				}
				_ = resp.Body.Close()
				return resp.StatusCode
			}
		}
		Eventually(status(""), 30*time.Second, 200*time.Millisecond).Should(Equal(http.StatusUnauthorized))
		Eventually(status(stranger), 10*time.Second).Should(Equal(http.StatusForbidden))
		Eventually(status(scraper), 10*time.Second).Should(Equal(http.StatusOK))
	})
})
