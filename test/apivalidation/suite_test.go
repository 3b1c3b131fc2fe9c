// Package apivalidation checks, against a real API server, that the CRDs
// reject bad GmsaStack and GmsaAccount objects with a message naming the
// field, accept the samples, and add nothing to a spec.
package apivalidation_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var env *harness.Env

func TestAPIValidation(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API validation Suite")
}

var _ = BeforeSuite(func() {
	var err error
	// Validation needs only the API server.
	env, err = harness.Start(harness.Options{NoControllerManager: true})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
