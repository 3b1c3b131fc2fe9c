// Package scheme builds the runtime.Scheme shared by the manager, the test
// harness and the demo: the built-in Kubernetes kinds, CRDs and gmsa.io.
package scheme

import (
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// New returns a scheme with every kind the operator reads or writes.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(gmsav1alpha1.AddToScheme(s))
	utilruntime.Must(cmapi.AddToScheme(s))
	return s
}
