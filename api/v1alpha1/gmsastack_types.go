package v1alpha1

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CRDPolicy says how a GmsaStack treats the GMSACredentialSpec CRD.
// +kubebuilder:validation:Enum=Manage;Adopt;External
type CRDPolicy string

const (
	// CRDPolicyManage installs and upgrades the CRD; a CRD that another
	// installer made is left alone and reported.
	CRDPolicyManage CRDPolicy = "Manage"
	// CRDPolicyAdopt takes over a CRD that another installer made, then
	// manages it as with Manage.
	CRDPolicyAdopt CRDPolicy = "Adopt"
	// CRDPolicyExternal never touches the CRD; it must be installed by
	// someone else.
	CRDPolicyExternal CRDPolicy = "External"
)

// CertificateSource says who issues the webhook's serving certificate.
// +kubebuilder:validation:Enum=SelfSigned;CertManager
type CertificateSource string

const (
	// CertificateSourceSelfSigned: the operator keeps its own CA and serving
	// certificate in Secrets and rotates them.
	CertificateSourceSelfSigned CertificateSource = "SelfSigned"
	// CertificateSourceCertManager: cert-manager issues the certificate and
	// injects the CA into the webhook configurations.
	CertificateSourceCertManager CertificateSource = "CertManager"
)

// AdmissionMode says what admits gMSA pods.
// +kubebuilder:validation:Enum=Webhook;Policy;Auto
type AdmissionMode string

const (
	// AdmissionModeWebhook: the admission webhook Deployment, called by the
	// API server through webhook configurations (every Kubernetes version).
	AdmissionModeWebhook AdmissionMode = "Webhook"
	// AdmissionModePolicy: no webhook; the API server fills in and checks
	// credspecs itself with a MutatingAdmissionPolicy and
	// ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1,
	// Kubernetes 1.36 and later).
	AdmissionModePolicy AdmissionMode = "Policy"
	// AdmissionModeAuto: Policy where the API server serves
	// MutatingAdmissionPolicy in admissionregistration.k8s.io/v1, nothing
	// asks for the webhook (webhook.randomHostname) and few credspecs exist
	// (see stack.AutoPolicyMaxCredSpecs), else Webhook.
	AdmissionModeAuto AdmissionMode = "Auto"
)

// LogLevel is the webhook's log verbosity (the upstream webhook's LOG_LEVEL).
// +kubebuilder:validation:Enum=trace;debug;info;warning;error
type LogLevel string

// Defaults applied in memory (never in the schema, so that GitOps tools see
// no drift between Git and the cluster).
const (
	DefaultNamespace            = "gmsa-system"
	DefaultReplicas       int32 = 2
	DefaultTimeoutSeconds int32 = 10
	DefaultLogLevel             = LogLevel("info")
	DefaultCRDPolicy            = CRDPolicyManage
	DefaultCertSource           = CertificateSourceSelfSigned
	DefaultAdmissionMode        = AdmissionModeAuto
)

// GmsaStackSpec is the desired gMSA admission stack. Every field is optional;
// an empty spec installs the stack with its defaults.
// +kubebuilder:validation:XValidation:rule="!has(self.certificates) || !has(self.certificates.certManager) || (has(self.certificates.source) && self.certificates.source == 'CertManager')",fieldPath=".certificates.certManager",message="certManager may only be set when certificates.source is CertManager"
// +kubebuilder:validation:XValidation:rule="!has(self.admission) || !has(self.admission.mode) || self.admission.mode != 'Policy' || !has(self.webhook) || !has(self.webhook.randomHostname) || !self.webhook.randomHostname",fieldPath=".admission.mode",message="Policy mode cannot set a random hostname (CEL has no random numbers): unset webhook.randomHostname, or use mode Webhook"
type GmsaStackSpec struct {
	// namespace is where the webhook Deployment, Service and Secrets live.
	// Defaults to gmsa-system. The webhooks never act on this namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit)"
	// +kubebuilder:validation:XValidation:rule="self != 'kube-system' && self != 'default'",message="the webhook must run in a namespace of its own, not kube-system or default"
	Namespace string `json:"namespace,omitempty"`

	// credentialSpecCRD says how the GMSACredentialSpec CRD is treated.
	// +optional
	CredentialSpecCRD *CredentialSpecCRDSpec `json:"credentialSpecCRD,omitempty"`

	// admission says what admits gMSA pods: the webhook, or admission
	// policies the API server runs itself.
	// +optional
	Admission *AdmissionSpec `json:"admission,omitempty"`

	// webhook configures the admission webhook Deployment and its
	// registration with the API server. In Policy mode only failurePolicy
	// and namespaceSelector apply (to the policies).
	// +optional
	Webhook *WebhookSpec `json:"webhook,omitempty"`

	// certificates configures the webhook's serving certificate.
	// +optional
	Certificates *CertificatesSpec `json:"certificates,omitempty"`
}

// AdmissionSpec says what admits gMSA pods.
type AdmissionSpec struct {
	// mode is Webhook, Policy or Auto (the default): Policy where the API
	// server serves admissionregistration.k8s.io/v1 MutatingAdmissionPolicy
	// (Kubernetes 1.36 and later) and at most 32 GMSACredentialSpecs exist
	// (back from Webhook at 24 or fewer), Webhook otherwise. Switching a running
	// stack keeps pods checked throughout: the new mode serves before the
	// old one is removed.
	// +optional
	Mode AdmissionMode `json:"mode,omitempty"`
}

// CredentialSpecCRDSpec says how the GMSACredentialSpec CRD is treated. The
// CRD is never deleted by the operator: deleting it would delete every
// credspec in the cluster.
type CredentialSpecCRDSpec struct {
	// policy is Manage (install and upgrade it; default), Adopt (take over a
	// CRD another installer made) or External (never touch it).
	// +optional
	Policy CRDPolicy `json:"policy,omitempty"`
}

// WebhookSpec configures the admission webhook.
type WebhookSpec struct {
	// image is the webhook container image. Defaults to the operator's own
	// image, which serves the webhook as well. The upstream
	// kubernetes-sigs/windows-gmsa webhook image works too.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains(' ')",message="must be an image reference without spaces"
	Image string `json:"image,omitempty"`

	// replicas is the number of webhook pods. Defaults to 2.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	Replicas *int32 `json:"replicas,omitempty"`

	// failurePolicy is what the API server does with a pod that mentions gMSA
	// when no webhook answers: Fail (default; the pod is refused) or Ignore.
	// Pods that do not mention gMSA are never sent to the webhook.
	// +optional
	// +kubebuilder:validation:Enum=Fail;Ignore
	FailurePolicy *admissionregistrationv1.FailurePolicyType `json:"failurePolicy,omitempty"`

	// timeoutSeconds is how long the API server waits for the webhook, from 1
	// to 30 seconds. Defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=30
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`

	// namespaceSelector selects further namespaces to exclude from admission,
	// on top of the built-in exclusions (the webhook's own namespace,
	// kube-system and namespaces labelled windows.k8s.io/disabled=true). It
	// holds one label or one expression (In, NotIn, Exists, DoesNotExist):
	// the webhooks can only be told which namespaces to send, and the
	// opposite of several ANDed requirements is no label selector.
	// +optional
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) ? size(self.matchLabels) : 0) + (has(self.matchExpressions) ? size(self.matchExpressions) : 0) <= 1",message="give exactly one label or one expression; label further namespaces windows.k8s.io/disabled=true to exclude them"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// randomHostname makes the webhook set a random hostname on gMSA pods
	// (the upstream webhook's RANDOM_HOSTNAME).
	// +optional
	RandomHostname *bool `json:"randomHostname,omitempty"`

	// logLevel is trace, debug, info (default), warning or error.
	// +optional
	LogLevel LogLevel `json:"logLevel,omitempty"`

	// resources are the webhook container's compute resources. Defaults to
	// small requests.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector is merged with kubernetes.io/os: linux.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations of the webhook pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity of the webhook pods. Defaults to a soft anti-affinity that
	// spreads replicas across nodes.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// priorityClassName of the webhook pods.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// CertificatesSpec configures the webhook's serving certificate.
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || duration(self.renewBefore) < duration(has(self.duration) ? self.duration : '8760h')",fieldPath=".renewBefore",message="renewBefore must be shorter than duration (default duration 8760h)"
// +kubebuilder:validation:XValidation:rule="!has(self.source) || self.source != 'CertManager' || !has(self.duration) || duration(self.duration) >= duration('1h')",fieldPath=".duration",message="must be at least 1h with source CertManager: cert-manager refuses shorter certificates"
// +kubebuilder:validation:XValidation:rule="!has(self.source) || self.source != 'CertManager' || !has(self.renewBefore) || duration(self.renewBefore) >= duration('5m')",fieldPath=".renewBefore",message="must be at least 5m with source CertManager: cert-manager refuses a shorter renewBefore"
type CertificatesSpec struct {
	// source is SelfSigned (default: the operator keeps a CA and the serving
	// certificate in Secrets and rotates them) or CertManager.
	// +optional
	Source CertificateSource `json:"source,omitempty"`

	// duration is the validity of the serving certificate, as a Go duration
	// of at least 3m (1h with source CertManager) such as 8760h (the
	// default).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('3m')",message="must be at least 3m, so that renewBefore (at least 2m) fits in it"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// renewBefore is how long before expiry the certificate is renewed, as a
	// Go duration shorter than duration, of at least 2m (5m with source
	// CertManager): a kubelet with default settings puts a renewed Secret
	// into the pods up to about a minute after it changed, and the pods
	// must serve the new certificate before the old one expires. Defaults to
	// 720h, or to a third of duration when that is shorter (2m at least).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('2m')",message="must be at least 2m: a kubelet with default settings puts a renewed Secret into the pods up to about a minute after it changed, and the pods must serve the new certificate before the old one expires"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// certManager configures cert-manager; only with source CertManager.
	// +optional
	CertManager *CertManagerSpec `json:"certManager,omitempty"`
}

// CertManagerSpec configures how cert-manager issues the certificate.
type CertManagerSpec struct {
	// issuerRef names the cert-manager issuer to use. When it is not set, the
	// operator creates a self-signed CA chain of Issuers in the stack's
	// namespace.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerReference names a cert-manager Issuer or ClusterIssuer.
type IssuerReference struct {
	// name of the issuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind is Issuer (default; in the stack's namespace) or ClusterIssuer.
	// +optional
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	Kind string `json:"kind,omitempty"`

	// group of the issuer. Defaults to cert-manager.io.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
}

// GmsaStackStatus is what the operator observed of the stack.
type GmsaStackStatus struct {
	// observedGeneration is the metadata.generation the status describes; -1
	// until the operator first saw the object.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, CRDEstablished,
	// CertificateReady, WebhookAvailable and AdmissionConfigured.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// namespace the stack was installed into.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// certificateNotAfter is when the serving certificate expires.
	// +optional
	CertificateNotAfter *metav1.Time `json:"certificateNotAfter,omitempty"`

	// image the webhook Deployment runs.
	// +optional
	Image string `json:"image,omitempty"`

	// admission is the admission mode in force, and why.
	// +optional
	Admission *AdmissionStatus `json:"admission,omitempty"`

	// readyReplicas of the webhook Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// retiredWebhook is the webhook the webhook configurations last stopped
	// calling: they were removed (the stack is being deleted) or pointed at
	// the webhook of another namespace (the stack moved). API servers may
	// call it a little longer, so it keeps running, with its RBAC, for a
	// teardown delay after retiredWebhook.since.
	// +optional
	RetiredWebhook *RetiredWebhook `json:"retiredWebhook,omitempty"`
}

// AdmissionStatus is the admission mode in force.
type AdmissionStatus struct {
	// mode in force: Webhook or Policy.
	// +required
	Mode AdmissionMode `json:"mode"`

	// reason the mode was chosen (spec.admission.mode, or what Auto found).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// RetiredWebhook is a webhook the webhook configurations no longer call.
type RetiredWebhook struct {
	// namespace the retired webhook runs in.
	// +required
	Namespace string `json:"namespace"`

	// since is when the webhook configurations stopped calling it.
	// +required
	Since metav1.MicroTime `json:"since"`
}

// GmsaStack is the cluster's gMSA admission stack: the GMSACredentialSpec
// CRD, the admission webhook with its certificate, and its registration.
// There is one per cluster; a second one reports Stalled and changes nothing.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=gmsa
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.admission.mode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GmsaStack struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired stack.
	// +optional
	Spec GmsaStackSpec `json:"spec,omitempty"`

	// status is what the operator observed.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status GmsaStackStatus `json:"status,omitempty"`
}

// GmsaStackList is a list of GmsaStacks.
//
// +kubebuilder:object:root=true
type GmsaStackList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the GmsaStacks.
	Items []GmsaStack `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GmsaStack{}, &GmsaStackList{})
}
