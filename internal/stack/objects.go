package stack

import (
	"errors"
	"fmt"
	"maps"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
)

// Names of the objects a GmsaStack installs. There is one stack per
// cluster, so the names are fixed; namespaced ones live in the stack's
// namespace.
const (
	// WebhookName names the ServiceAccount, Service, Deployment,
	// PodDisruptionBudget, ClusterRole, ClusterRoleBinding and both webhook
	// configurations.
	WebhookName = "gmsa-webhook"
	// CASecretName holds the operator's CA (SelfSigned mode), or
	// cert-manager's CA (CertManager mode without an issuerRef).
	CASecretName = "gmsa-webhook-ca"
	// TLSSecretName holds the serving certificate mounted into the pods.
	TLSSecretName = "gmsa-webhook-tls"
)

// Ports and paths of the webhook container.
const (
	// ServicePort is the port of the Service, where the API server calls.
	ServicePort int32 = 443
	// ContainerPort is where the webhook listens (HTTPS_PORT): above 1024,
	// so that it runs without privileges.
	ContainerPort int32 = 8443
	// MetricsPort serves /metrics, /healthz and /readyz (own image only).
	MetricsPort int32 = 8080
	// CertDir is where the serving certificate Secret is mounted.
	CertDir = "/tls"
	// OwnWebhookCommand runs the webhook from the operator's own image.
	OwnWebhookCommand = "/webhook"
	// CAIDAnnotation on the pod template names the CA that signed the
	// serving certificate; a CA rollover changes it, which rolls the pods.
	CAIDAnnotation = "gmsa.io/ca-id"
)

// Default certificate lifetimes.
const (
	DefaultDuration    = 8760 * time.Hour
	DefaultRenewBefore = 720 * time.Hour
	// MinRenewBefore is the shortest renewBefore the API accepts: a kubelet
	// with default settings (syncFrequency 1m) put a renewed Secret into
	// the pods 39-43 s after it changed on the real node, and the pods must
	// serve the new certificate before the old one expires.
	MinRenewBefore = 2 * time.Minute
)

// Config is a GmsaStack's spec with every default applied.
type Config struct {
	StackName      string
	Namespace      string
	CRDPolicy      gmsav1alpha1.CRDPolicy
	Image          string
	OwnImage       bool
	Replicas       int32
	FailurePolicy  admissionregistrationv1.FailurePolicyType
	TimeoutSeconds int32
	// ExtraExclusion is the spec's namespaceSelector requirement, negated.
	ExtraExclusion    *metav1.LabelSelectorRequirement
	RandomHostname    bool
	LogLevel          string
	Resources         corev1.ResourceRequirements
	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	Affinity          *corev1.Affinity
	PriorityClassName string
	CertSource        gmsav1alpha1.CertificateSource
	// AdmissionMode is the mode the spec asks for (Auto by default); see
	// ResolveMode for the one in force.
	AdmissionMode gmsav1alpha1.AdmissionMode
	Duration      time.Duration
	RenewBefore   time.Duration
	IssuerRef     *gmsav1alpha1.IssuerReference
}

// Resolve applies the defaults to a GmsaStack's spec. operatorImage is the
// operator's own image (from the manager's environment); it is the webhook
// image unless the spec names another. The error names the field at fault.
func Resolve(s *gmsav1alpha1.GmsaStack, operatorImage string) (Config, error) {
	c := Config{
		StackName:      s.Name,
		Namespace:      s.Spec.Namespace,
		CRDPolicy:      gmsav1alpha1.DefaultCRDPolicy,
		Replicas:       gmsav1alpha1.DefaultReplicas,
		FailurePolicy:  admissionregistrationv1.Fail,
		TimeoutSeconds: gmsav1alpha1.DefaultTimeoutSeconds,
		LogLevel:       string(gmsav1alpha1.DefaultLogLevel),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		CertSource:    gmsav1alpha1.DefaultCertSource,
		AdmissionMode: gmsav1alpha1.DefaultAdmissionMode,
		Duration:      DefaultDuration,
		RenewBefore:   DefaultRenewBefore,
	}
	if a := s.Spec.Admission; a != nil && a.Mode != "" {
		c.AdmissionMode = a.Mode
	}
	if c.Namespace == "" {
		c.Namespace = gmsav1alpha1.DefaultNamespace
	}
	if p := s.Spec.CredentialSpecCRD; p != nil && p.Policy != "" {
		c.CRDPolicy = p.Policy
	}
	if w := s.Spec.Webhook; w != nil {
		c.Image = w.Image
		if w.Replicas != nil {
			c.Replicas = *w.Replicas
		}
		if w.FailurePolicy != nil {
			c.FailurePolicy = *w.FailurePolicy
		}
		if w.TimeoutSeconds != nil {
			c.TimeoutSeconds = *w.TimeoutSeconds
		}
		if w.NamespaceSelector != nil {
			ex, err := negate(w.NamespaceSelector)
			if err != nil {
				return c, fmt.Errorf("spec.webhook.namespaceSelector: %w", err)
			}
			c.ExtraExclusion = ex
		}
		c.RandomHostname = ptr.Deref(w.RandomHostname, false)
		if w.LogLevel != "" {
			c.LogLevel = string(w.LogLevel)
		}
		if c.LogLevel == "warning" {
			c.LogLevel = "warn" // the webhooks' LOG_LEVEL spelling
		}
		if w.Resources != nil {
			c.Resources = *w.Resources
		}
		c.NodeSelector = w.NodeSelector
		c.Tolerations = w.Tolerations
		c.Affinity = w.Affinity
		c.PriorityClassName = w.PriorityClassName
	}
	if c.Image == "" || c.Image == operatorImage {
		if operatorImage == "" {
			return c, errors.New("spec.webhook.image: not set, and the manager has no image of its own to default to (environment variable " + OperatorImageEnv + ")")
		}
		c.Image, c.OwnImage = operatorImage, true
	}
	if cs := s.Spec.Certificates; cs != nil {
		if cs.Source != "" {
			c.CertSource = cs.Source
		}
		if cs.Duration != nil {
			c.Duration = cs.Duration.Duration
		}
		if cs.RenewBefore != nil {
			c.RenewBefore = cs.RenewBefore.Duration
		} else if third := max(c.Duration/3, MinRenewBefore); third < c.RenewBefore {
			c.RenewBefore = third
		}
		if cs.CertManager != nil && cs.CertManager.IssuerRef != nil {
			ref := *cs.CertManager.IssuerRef
			if ref.Kind == "" {
				ref.Kind = "Issuer"
			}
			if ref.Group == "" {
				ref.Group = "cert-manager.io"
			}
			c.IssuerRef = &ref
		}
	}
	if c.RenewBefore >= c.Duration {
		return c, fmt.Errorf("spec.certificates.renewBefore: %s must be shorter than duration %s", c.RenewBefore, c.Duration)
	}
	return c, nil
}

// OperatorImageEnv is the manager's environment variable with its own image
// (OLM fills it from the CSV's relatedImages).
const OperatorImageEnv = "RELATED_IMAGE_WEBHOOK"

// negate turns a one-requirement selector of namespaces to exclude into the
// requirement that keeps the others. A label selector ANDs its
// requirements, and the negation of an AND is not a selector, so only one
// requirement is accepted (the schema says so too).
func negate(sel *metav1.LabelSelector) (*metav1.LabelSelectorRequirement, error) {
	reqs := make([]metav1.LabelSelectorRequirement, 0, 1)
	for k, v := range sel.MatchLabels {
		reqs = append(reqs, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{v}})
	}
	reqs = append(reqs, sel.MatchExpressions...)
	switch len(reqs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("has %d requirements; give exactly one label or expression (label namespaces windows.k8s.io/disabled=true to exclude more)", len(reqs))
	}
	r := reqs[0]
	out := metav1.LabelSelectorRequirement{Key: r.Key, Values: r.Values}
	switch r.Operator {
	case metav1.LabelSelectorOpIn:
		out.Operator = metav1.LabelSelectorOpNotIn
	case metav1.LabelSelectorOpNotIn:
		out.Operator = metav1.LabelSelectorOpIn
	case metav1.LabelSelectorOpExists:
		out.Operator = metav1.LabelSelectorOpDoesNotExist
	case metav1.LabelSelectorOpDoesNotExist:
		out.Operator = metav1.LabelSelectorOpExists
	default:
		return nil, fmt.Errorf("operator %q is not In, NotIn, Exists or DoesNotExist", r.Operator)
	}
	return &out, nil
}

// Labels are the labels of every object of the stack.
func (c Config) Labels() map[string]string {
	return map[string]string{
		gmsav1alpha1.LabelManagedBy: gmsav1alpha1.ManagedByValue,
		gmsav1alpha1.LabelStack:     c.StackName,
		"app.kubernetes.io/part-of": "gmsa-operator",
	}
}

// PodLabels select the webhook pods. They do not name the stack: a
// Deployment's selector cannot change, and a stack may be renamed.
func (c Config) PodLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": WebhookName, "app.kubernetes.io/component": "admission-webhook"}
}

func (c Config) meta(name string, namespaced bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: c.Labels()}
	if namespaced {
		m.Namespace = c.Namespace
	}
	return m
}

// CRD is the GMSACredentialSpec CRD with the stack's labels. It gets no
// owner reference: deleting the stack must not delete every credspec.
func (c Config) CRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	crd, err := credspeccrd.CRD()
	if err != nil {
		return nil, err
	}
	crd.TypeMeta = metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}
	maps.Copy(crd.Labels, c.Labels())
	return crd, nil
}

// NamespaceObject is the webhook's namespace, made when it does not exist.
//
// It enforces the restricted Pod Security Standard: the webhook runs as a
// non-root user with a read-only root filesystem and no privilege, and
// nothing else belongs there.
func (c Config) NamespaceObject() *corev1.Namespace {
	ns := &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: c.meta(c.Namespace, false)}
	ns.Labels[PodSecurityEnforceLabel] = "restricted"
	return ns
}

// PodSecurityEnforceLabel sets the Pod Security Standard a namespace enforces.
const PodSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"

// ServiceAccount of the webhook pods.
func (c Config) ServiceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: c.meta(WebhookName, true)}
}

// ClusterRole grants the webhook what it needs and nothing more: reading
// credspecs (for its cache) and asking the API server whether a service
// account may use one.
func (c Config) ClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
		ObjectMeta: c.meta(WebhookName, false),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{credspeccrd.Group}, Resources: []string{credspeccrd.Resource}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}
}

// ClusterRoleBinding binds the ClusterRole to the webhook's ServiceAccount,
// and to the ones in the other namespaces given (the namespace the webhook
// configurations still call while the stack moves, and a retired webhook's
// during its teardown delay), so that an old webhook keeps working for as
// long as API servers may call it.
func (c Config) ClusterRoleBinding(others ...string) *rbacv1.ClusterRoleBinding {
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: WebhookName, Namespace: c.Namespace}}
	seen := map[string]bool{c.Namespace: true, "": true}
	for _, ns := range others {
		if !seen[ns] {
			seen[ns] = true
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: WebhookName, Namespace: ns})
		}
	}
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
		ObjectMeta: c.meta(WebhookName, false),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: WebhookName},
		Subjects:   subjects,
	}
}

// Secret is a Secret of the stack with the given data.
func (c Config) Secret(name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{TypeMeta: typeMeta("v1", "Secret"), ObjectMeta: c.meta(name, true), Type: typ, Data: data}
}

// Service fronts the webhook pods on ServicePort.
func (c Config) Service() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: c.meta(WebhookName, true),
		Spec: corev1.ServiceSpec{
			Selector: c.PodLabels(),
			Ports: []corev1.ServicePort{{
				Name: "https", Port: ServicePort, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// DNSNames are the names the serving certificate covers.
func (c Config) DNSNames() []string { return certs.ServiceDNSNames(WebhookName, c.Namespace) }

// Deployment runs the webhook. caID names the CA of the serving certificate
// (empty in CertManager mode, where cert-manager renews in place and the
// webhook reloads the files).
func (c Config) Deployment(caID string) *appsv1.Deployment {
	labels := c.PodLabels()
	podLabels := c.Labels()
	maps.Copy(podLabels, labels)
	var annotations map[string]string
	if caID != "" {
		annotations = map[string]string{CAIDAnnotation: caID}
	}
	nodeSelector := map[string]string{corev1.LabelOSStable: "linux"}
	maps.Copy(nodeSelector, c.NodeSelector)
	affinity := c.Affinity
	if affinity == nil {
		affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					TopologyKey:   corev1.LabelHostname,
				},
			}},
		}}
	}
	container := corev1.Container{
		Name:  "webhook",
		Image: c.Image,
		Env: []corev1.EnvVar{
			{Name: "TLS_CRT", Value: CertDir + "/" + TLSCertKey},
			{Name: "TLS_KEY", Value: CertDir + "/" + TLSKeyKey},
			{Name: "HTTPS_PORT", Value: fmt.Sprint(ContainerPort)},
			{Name: "LOG_LEVEL", Value: c.LogLevel},
			{Name: "RANDOM_HOSTNAME", Value: fmt.Sprint(c.RandomHostname)},
		},
		Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: ContainerPort, Protocol: corev1.ProtocolTCP}},
		// /health answers once the certificate is loaded and the credspec
		// cache is synced, in both this and the upstream webhook.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("https"), Scheme: corev1.URISchemeHTTPS}},
			PeriodSeconds:    5,
			FailureThreshold: 2,
		},
		Resources:    c.Resources,
		VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: CertDir, ReadOnly: true}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
	// --cert-reload: the upstream webhook reloads a renewed certificate only
	// with it (this one always does, and accepts it).
	container.Args = []string{"--cert-reload"}
	if c.OwnImage {
		container.Command = []string{OwnWebhookCommand}
		container.Ports = append(container.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP})
		container.Args = append(container.Args, fmt.Sprintf("--metrics-bind-address=:%d", MetricsPort))
		container.LivenessProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("metrics"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    10,
			FailureThreshold: 3,
		}
	}
	replicas := c.Replicas
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: c.meta(WebhookName, true),
		Spec: appsv1.DeploymentSpec{
			Replicas:             &replicas,
			Selector:             &metav1.LabelSelector{MatchLabels: labels},
			RevisionHistoryLimit: ptr.To[int32](3),
			// Never fewer ready replicas than asked for during a rollout.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:           WebhookName,
					AutomountServiceAccountToken: ptr.To(true),
					Containers:                   []corev1.Container{container},
					Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{
						Secret: &corev1.SecretVolumeSource{SecretName: TLSSecretName, DefaultMode: ptr.To[int32](0o440)},
					}}},
					NodeSelector:      nodeSelector,
					Tolerations:       c.Tolerations,
					Affinity:          affinity,
					PriorityClassName: c.PriorityClassName,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](65532),
						RunAsGroup:     ptr.To[int64](65532),
						FSGroup:        ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				},
			},
		},
	}
}

// PodDisruptionBudget lets a drain take one webhook pod at a time (with one
// replica, that one: a PDB must never block a drain forever).
func (c Config) PodDisruptionBudget() *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta("policy/v1", "PodDisruptionBudget"),
		ObjectMeta: c.meta(WebhookName, true),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: c.PodLabels()},
		},
	}
}

// WebhookConfigurations registers the webhook. bundle is the caBundle
// (SelfSigned) or nil (CertManager: cainjector fills it from the
// Certificate named in the annotation).
func (c Config) WebhookConfigurations(bundle []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	o := AdmissionOptions{
		Name: WebhookName, Namespace: c.Namespace, ServiceName: WebhookName, Port: ServicePort,
		CABundle: bundle, FailurePolicy: c.FailurePolicy, TimeoutSeconds: c.TimeoutSeconds,
		Labels: c.Labels(), ExtraExclusion: c.ExtraExclusion,
	}
	if c.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		o.Annotations = map[string]string{InjectCAFromAnnotation: c.Namespace + "/" + WebhookName}
	}
	return WebhookConfigurations(o)
}

// InjectCAFromAnnotation asks cert-manager's cainjector to fill caBundle
// from a Certificate's CA.
const InjectCAFromAnnotation = "cert-manager.io/inject-ca-from"

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
