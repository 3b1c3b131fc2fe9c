package v1alpha1

// Condition types. Ready is the summary. Reconciling and Stalled follow the
// kstatus convention used by Flux: they are present and True only while the
// object is abnormal (being changed, or stuck until a person acts), and are
// removed otherwise.
const (
	// ConditionReady is True when everything the object asks for exists and
	// works as specified.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is still bringing the
	// cluster to the desired state.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress without a
	// change by a person (a conflict, or input the API server could not check).
	ConditionStalled = "Stalled"

	// ConditionCRDEstablished (GmsaStack) is True when the GMSACredentialSpec
	// CRD is installed at the version this operator ships and is Established.
	ConditionCRDEstablished = "CRDEstablished"
	// ConditionCertificateReady (GmsaStack) is True when the webhook's serving
	// certificate exists, is valid and is not due for renewal.
	ConditionCertificateReady = "CertificateReady"
	// ConditionWebhookAvailable (GmsaStack) is True when the webhook Deployment
	// is Available.
	ConditionWebhookAvailable = "WebhookAvailable"
	// ConditionAdmissionConfigured (GmsaStack) is True when the mutating and
	// validating webhook configurations are registered with the API server.
	ConditionAdmissionConfigured = "AdmissionConfigured"
)

// Condition reasons. Each says, in one CamelCase word, why a condition has
// its status; docs/troubleshooting.md explains what to do about each.
const (
	// ReasonSucceeded: the object, or this step of it, is as specified.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: the operator is applying changes.
	ReasonProgressing = "Progressing"
	// ReasonReconcileError: a request to the API server failed; it is retried.
	ReasonReconcileError = "ReconcileError"

	// ReasonCredentialSpecConflict (GmsaAccount): a GMSACredentialSpec of the
	// wanted name exists and belongs to someone else; it is left untouched.
	ReasonCredentialSpecConflict = "CredentialSpecConflict"
	// ReasonCredentialSpecNotFound (GmsaAccount): the referenced
	// GMSACredentialSpec does not exist (yet).
	ReasonCredentialSpecNotFound = "CredentialSpecNotFound"
	// ReasonRBACConflict (GmsaAccount): a ClusterRole or RoleBinding of the
	// name the operator uses exists and belongs to someone else.
	ReasonRBACConflict = "RBACConflict"
	// ReasonInvalidCredentialSpec (GmsaAccount): a raw or referenced credspec
	// lacks what a Windows node needs.
	ReasonInvalidCredentialSpec = "InvalidCredentialSpec"

	// ReasonDuplicateStack (GmsaStack): another GmsaStack already manages the
	// cluster's gMSA stack; this one changes nothing.
	ReasonDuplicateStack = "DuplicateStack"
	// ReasonCRDOwnedElsewhere (GmsaStack): the GMSACredentialSpec CRD was
	// installed by another tool and credentialSpecCRD.policy is Manage.
	ReasonCRDOwnedElsewhere = "CRDOwnedElsewhere"
	// ReasonCRDNotInstalled (GmsaStack): policy is External and the CRD is
	// missing.
	ReasonCRDNotInstalled = "CRDNotInstalled"
	// ReasonCertificatePending (GmsaStack): the serving certificate is not
	// issued yet (for example cert-manager has not written its Secret).
	ReasonCertificatePending = "CertificatePending"
	// ReasonIssuerNotFound (GmsaStack): the cert-manager issuer named in the
	// spec does not exist.
	ReasonIssuerNotFound = "IssuerNotFound"
	// ReasonDeploymentUnavailable (GmsaStack): the webhook Deployment has no
	// available replica.
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	// ReasonWaitingForWebhook (GmsaStack): the webhook configurations are held
	// back until the webhook Deployment is Available.
	ReasonWaitingForWebhook = "WaitingForWebhook"
	// ReasonWaitingForEndpoints (GmsaStack): the webhook Deployment is
	// Available, but the webhook configurations wait until the EndpointSlices
	// of its Service list a ready endpoint, and kube-proxy has had
	// stack.RouteSettle to route it.
	ReasonWaitingForEndpoints = "WaitingForEndpoints"
	// ReasonWaitingForCAInjection (GmsaStack, CertManager mode): the webhook
	// configurations are registered, but their caBundle does not yet hold the
	// CA that signed the serving certificate (cert-manager's cainjector puts
	// it there): the API server could not yet call the webhook.
	ReasonWaitingForCAInjection = "WaitingForCAInjection"
	// ReasonInvalidSpec (GmsaStack): the spec cannot be carried out as
	// written (the message names the field); nothing was changed.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonObjectConflict (GmsaStack): an object of a name the stack uses
	// exists and was not made by the operator; it is left untouched.
	ReasonObjectConflict = "ObjectConflict"
	// ReasonCertManagerNotInstalled (GmsaStack): certificates.source is
	// CertManager but cert-manager's CRDs are not installed.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"
	// ReasonDeleting: the object is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonPolicyNotServed (GmsaStack): admission.mode is Policy, and the
	// API server does not serve admissionregistration.k8s.io/v1
	// MutatingAdmissionPolicy (Kubernetes before 1.36).
	ReasonPolicyNotServed = "PolicyNotServed"
	// ReasonWaitingForPublication (GmsaAccount): the GmsaStack admits pods
	// in Policy mode and has not yet published the account's credspec to
	// the admission policies.
	ReasonWaitingForPublication = "WaitingForPublication"
	// ReasonSwitchingMode (GmsaStack): the admission mode changes; the new
	// one serves, and the old one is removed after the teardown delay.
	ReasonSwitchingMode = "SwitchingMode"
)

// Labels the operator puts on every object it generates. It never copies the
// user's own labels onto generated objects (GitOps tools would then prune
// them as their own).
const (
	// LabelManagedBy is app.kubernetes.io/managed-by; its value is
	// ManagedByValue on every object this operator generates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "gmsa-operator"
	// LabelAccount names the GmsaAccount an object was generated for.
	LabelAccount = "gmsa.io/account"
	// LabelStack names the GmsaStack an object was generated for.
	LabelStack = "gmsa.io/stack"
	// FieldManager is the server-side apply field manager of the operator.
	FieldManager = "gmsa-operator"
)
