package stack

// This file holds Policy mode: gMSA admission done by the API server itself,
// with a MutatingAdmissionPolicy and two ValidatingAdmissionPolicies
// (admissionregistration.k8s.io/v1, Kubernetes 1.36 and later) instead of a
// webhook. CEL cannot read GMSACredentialSpecs or encode JSON, so the
// operator publishes every credspec's content, as the webhook would inline
// it, in ConfigMaps of the stack's namespace (the parameter objects):
//
//   - the index (PolicyIndexName): one key per credspec name, "1" when the
//     credspec has a credspec field and "0" when it has none. The checks
//     that a name exists read it.
//   - the shards (label PolicyShardLabel): the content, name -> compact JSON,
//     spread over a power-of-two number of objects by a hash of the name
//     so that none nears the API server's object size limit. The mutation
//     and the content check bind to every shard; a name's content sits in
//     one of them (in two, with equal content, while they are resharded).
//
// The order of writes keeps every answer safe: content is published before
// its name enters the index, and a name leaves the index before its content
// goes. A name the mutation could not fill is refused, never let through.

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// Names and labels of the Policy mode objects.
const (
	// PolicyName names the MutatingAdmissionPolicy, the
	// ValidatingAdmissionPolicy of existence, authorization and immutability,
	// and their bindings.
	PolicyName = "gmsa.windows.k8s.io"
	// ContentPolicyName names the ValidatingAdmissionPolicy (and binding)
	// that checks content given with a name against the shards.
	ContentPolicyName = "gmsa-content.windows.k8s.io"
	// PolicyIndexName is the GmsaCredSpecSet that lists every credspec name.
	PolicyIndexName = "gmsa-credspec-index"
	// PolicyShardPrefix starts the name of every content shard:
	// gmsa-credspecs-<shards>-<index>.
	PolicyShardPrefix = "gmsa-credspecs-"
	// PolicyShardLabel marks the content shards; the bindings select them
	// by it.
	PolicyShardLabel = "gmsa.io/credspec-shard"
	// ShardBudget is the most data bytes (keys and values) a shard holds:
	// well under the API server's limit of about 1.5 MiB per object.
	ShardBudget = 768 << 10
	// IndexBudget is the most data bytes the index holds (about 25,000
	// credspecs of 30-character names).
	IndexBudget = 900 << 10
)

// Index values: whether the credspec has content.
const (
	indexHasContent = "1"
	indexNoContent  = "0"
)

// Published is what Policy mode publishes of one GMSACredentialSpec.
type Published struct {
	// Content is its credspec field as the webhook inlines it (compact
	// JSON); "" when it has none.
	Content string
}

// PolicyParams returns the index and the content shards for the given
// credspecs (by name). The number of shards is the smallest power of two
// at which each stays within ShardBudget. It fails when the index itself
// would not fit in IndexBudget.
func (c Config) PolicyParams(specs map[string]Published) (index *gmsav1alpha1.GmsaCredSpecSet, shards []*gmsav1alpha1.GmsaCredSpecSet, err error) {
	idx := make(map[string]string, len(specs))
	size := 0
	for name, p := range specs {
		v := indexNoContent
		if p.Content != "" {
			v = indexHasContent
		}
		idx[name] = v
		size += len(name) + len(v)
	}
	if size > IndexBudget {
		return nil, nil, fmt.Errorf("spec.admission.mode Policy: the %d GMSACredentialSpecs' names take %d bytes, more than the %d one parameter object may hold; use mode Webhook", len(specs), size, IndexBudget)
	}
	index = c.credSpecSet(PolicyIndexName, nil)
	index.Data = idx

	n := 1
	var parts []map[string]string
	for {
		parts, err = shard(specs, n)
		if err == nil {
			break
		}
		if n >= 1024 {
			return nil, nil, err
		}
		n *= 2
	}
	for i, data := range parts {
		cm := c.credSpecSet(ShardName(n, i), map[string]string{PolicyShardLabel: "true"})
		cm.Data = data
		shards = append(shards, cm)
	}
	return index, shards, nil
}

// ShardName is the name of shard i of n.
func ShardName(n, i int) string {
	return PolicyShardPrefix + strconv.Itoa(n) + "-" + strconv.Itoa(i)
}

// ShardOf is the shard, of n, that holds a credspec's content.
func ShardOf(name string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % uint32(n))
}

func shard(specs map[string]Published, n int) ([]map[string]string, error) {
	parts := make([]map[string]string, n)
	sizes := make([]int, n)
	for i := range parts {
		parts[i] = map[string]string{}
	}
	for name, p := range specs {
		if p.Content == "" {
			continue
		}
		i := ShardOf(name, n)
		parts[i][name] = p.Content
		sizes[i] += len(name) + len(p.Content)
		if sizes[i] > ShardBudget {
			return nil, fmt.Errorf("credspec contents exceed %d bytes in one of %d parameter objects", ShardBudget, n)
		}
	}
	return parts, nil
}

func (c Config) credSpecSet(name string, labels map[string]string) *gmsav1alpha1.GmsaCredSpecSet {
	m := c.meta(name, true)
	maps.Copy(m.Labels, labels)
	return &gmsav1alpha1.GmsaCredSpecSet{TypeMeta: typeMeta(gmsav1alpha1.GroupVersion.String(), "GmsaCredSpecSet"), ObjectMeta: m}
}

// PolicyObjects returns the policies and bindings of Policy mode: the
// MutatingAdmissionPolicy that fills in content, the ValidatingAdmissionPolicy
// of existence, authorization and immutability, the one of content, and a
// binding for each, restricted to the namespaces the webhook would be sent.
func (c Config) PolicyObjects() (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding,
	[]*admissionregistrationv1.ValidatingAdmissionPolicy, []*admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	policy := c.FailurePolicy
	setKind := &admissionregistrationv1.ParamKind{APIVersion: gmsav1alpha1.GroupVersion.String(), Kind: "GmsaCredSpecSet"}
	conditions := []admissionregistrationv1.MatchCondition{{Name: "mentions-gmsa", Expression: MentionsGMSA}}
	deny := admissionregistrationv1.DenyAction
	shards := &admissionregistrationv1.ParamRef{
		Namespace:               c.Namespace,
		Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{PolicyShardLabel: "true", "app.kubernetes.io/part-of": "gmsa-operator"}},
		ParameterNotFoundAction: &deny,
	}
	index := &admissionregistrationv1.ParamRef{Namespace: c.Namespace, Name: PolicyIndexName, ParameterNotFoundAction: &deny}
	match := &admissionregistrationv1.MatchResources{NamespaceSelector: NamespaceSelector(c.Namespace, c.exclusions()...)}
	validateRules := &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
		namedPodRule([]string{"pods"}, admissionregistrationv1.Create, admissionregistrationv1.Update),
		namedPodRule([]string{"pods/ephemeralcontainers"}, admissionregistrationv1.Update),
	}}

	mutating := &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion.String(), "MutatingAdmissionPolicy"),
		ObjectMeta: c.meta(PolicyName, false),
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ParamKind: setKind,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
				namedPodRule([]string{"pods"}, admissionregistrationv1.Create),
				namedPodRule([]string{"pods/ephemeralcontainers"}, admissionregistrationv1.Update),
			}},
			MatchConditions:    conditions,
			Variables:          append(freshVariables(), mutateVariables()...),
			Mutations:          []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration, ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: fillExpression}}},
			FailurePolicy:      &policy,
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	mutatingBinding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion.String(), "MutatingAdmissionPolicyBinding"),
		ObjectMeta: c.meta(PolicyName, false),
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: PolicyName, ParamRef: shards, MatchResources: match},
	}

	admit := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicy"),
		ObjectMeta: c.meta(PolicyName, false),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        setKind,
			MatchConstraints: validateRules,
			MatchConditions:  conditions,
			Variables:        append(freshVariables(), admitVariables()...),
			Validations:      admitValidations(),
			FailurePolicy:    &policy,
		},
	}
	content := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicy"),
		ObjectMeta: c.meta(ContentPolicyName, false),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        setKind,
			MatchConstraints: validateRules,
			MatchConditions:  conditions,
			Variables:        append(freshVariables(), contentVariables()...),
			Validations:      contentValidations(),
			FailurePolicy:    &policy,
		},
	}
	binding := func(name string, ref *admissionregistrationv1.ParamRef) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
		return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicyBinding"),
			ObjectMeta: c.meta(name, false),
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName: name, ParamRef: ref, MatchResources: match,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			},
		}
	}
	return mutating, mutatingBinding,
		[]*admissionregistrationv1.ValidatingAdmissionPolicy{admit, content},
		[]*admissionregistrationv1.ValidatingAdmissionPolicyBinding{binding(PolicyName, index), binding(ContentPolicyName, shards)}
}

func (c Config) exclusions() []metav1.LabelSelectorRequirement {
	if c.ExtraExclusion == nil {
		return nil
	}
	return []metav1.LabelSelectorRequirement{*c.ExtraExclusion}
}

func namedPodRule(resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.NamedRuleWithOperations {
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope},
	}}
}

// gmsaEntries is a CEL list of the gMSA settings of pod (object or
// oldObject), in the webhook's order (the pod, containers, init containers,
// ephemeral containers): one map per holder that has a name or content,
// with keys kind, owner and, when set, name and content.
func gmsaEntries(pod string) string {
	entry := func(kind, owner, holder string) string {
		wo := holder + ".?securityContext.?windowsOptions"
		return fmt.Sprintf("{'kind': dyn('%s'), 'owner': %s, ?'name': %s.?gmsaCredentialSpecName, ?'content': %s.?gmsaCredentialSpec}", kind, owner, wo, wo)
	}
	parts := []string{"[" + entry("pod", pod+".metadata.?name.orValue('')", pod+".spec") + "]"}
	for _, l := range []struct{ kind, field string }{{"container", "containers"}, {"initContainer", "initContainers"}, {"ephemeralContainer", "ephemeralContainers"}} {
		parts = append(parts, fmt.Sprintf("(has(%[1]s.spec.%[2]s) ? %[1]s.spec.%[2]s.map(c, %[3]s) : [])", pod, l.field, entry(l.kind, "c.name", "c")))
	}
	return "(" + strings.Join(parts, " + ") + ").filter(o, 'name' in o || 'content' in o)"
}

func variable(name, expr string) admissionregistrationv1.Variable {
	return admissionregistrationv1.Variable{Name: name, Expression: expr}
}

// freshVariables compute, for every policy, the gMSA settings the request
// creates (variables.fresh): all of them on CREATE, those of the ephemeral
// containers being added on an UPDATE of pods/ephemeralcontainers, none on
// another UPDATE.
func freshVariables() []admissionregistrationv1.Variable {
	return []admissionregistrationv1.Variable{
		variable("all", gmsaEntries("object")),
		variable("existingEphemeral", "oldObject != null && has(oldObject.spec.ephemeralContainers) ? oldObject.spec.ephemeralContainers.map(c, c.name) : []"),
		variable("fresh", "request.operation == 'CREATE' ? variables.all : "+
			"(request.?subResource.orValue('') == 'ephemeralcontainers' ? variables.all.filter(o, o.kind == 'ephemeralContainer' && !(o.owner in variables.existingEphemeral)) : [])"),
		variable("published", "params.?data.orValue({})"),
	}
}

func mutateVariables() []admissionregistrationv1.Variable {
	// needs(x): x names a credspec of this shard and has no content yet.
	needs := func(wo string) string {
		return fmt.Sprintf("(%[1]s.?gmsaCredentialSpecName.hasValue() && !%[1]s.?gmsaCredentialSpec.hasValue() && %[1]s.?gmsaCredentialSpecName.value() in variables.published)", wo)
	}
	list := func(field string) string {
		return fmt.Sprintf("has(object.spec.%[1]s) ? object.spec.%[1]s.filter(c, (request.operation == 'CREATE' || !(c.name in variables.existingEphemeral)) && %[2]s) : []",
			field, needs("c.?securityContext.?windowsOptions"))
	}
	return []admissionregistrationv1.Variable{
		variable("fillPod", "request.operation == 'CREATE' && "+needs("object.spec.?securityContext.?windowsOptions")),
		variable("fillContainers", "request.operation == 'CREATE' ? ("+list("containers")+") : []"),
		variable("fillInitContainers", "request.operation == 'CREATE' ? ("+list("initContainers")+") : []"),
		variable("fillEphemeralContainers", list("ephemeralContainers")),
	}
}

// fillExpression is the apply configuration that sets each name's content
// from the shard that holds it (containers merge by name).
var fillExpression = func() string {
	sc := func(t, name string) string {
		return fmt.Sprintf("%[1]s.securityContext{windowsOptions: %[1]s.securityContext.windowsOptions{gmsaCredentialSpec: variables.published[%[2]s]}}", t, name)
	}
	list := func(field, variable string) string {
		t := "Object.spec." + field
		return fmt.Sprintf("?%[1]s: size(variables.%[2]s) > 0 ? optional.of(variables.%[2]s.map(c, %[3]s{name: c.name, securityContext: %[4]s})) : optional.none()",
			field, variable, t, sc(t, "c.securityContext.windowsOptions.gmsaCredentialSpecName"))
	}
	return "Object{spec: Object.spec{" +
		"?securityContext: variables.fillPod ? optional.of(" + sc("Object.spec", "object.spec.securityContext.windowsOptions.gmsaCredentialSpecName") + ") : optional.none(), " +
		list("containers", "fillContainers") + ", " +
		list("initContainers", "fillInitContainers") + ", " +
		list("ephemeralContainers", "fillEphemeralContainers") +
		"}}"
}()

// authorized is true when the pod's service account may `use` the
// credspec named by the CEL expression name, as the webhook's
// LocalSubjectAccessReview asks. Each check costs 350,000 of the 1,000,000
// an expression may spend (10,000,000 per policy): two per expression at
// most.
func authorized(name string) string {
	return "authorizer.serviceAccount(request.namespace, variables.serviceAccount).group('windows.k8s.io').resource('gmsacredentialspecs').namespace(request.namespace).name(" + name + ").check('use').allowed()"
}

func authorizationVariables() []admissionregistrationv1.Variable {
	return []admissionregistrationv1.Variable{
		variable("serviceAccount", "object.spec.?serviceAccountName.orValue('') == '' ? 'default' : object.spec.serviceAccountName"),
		// A messageExpression cannot call the authorizer: each position of
		// names is checked by a validation of its own.
		variable("names", "variables.fresh.filter(o, 'name' in o).map(o, o.name)"),
	}
}

func admitVariables() []admissionregistrationv1.Variable {
	return append([]admissionregistrationv1.Variable{
		// Names the mutation could not fill: not published (missing) or
		// published without content.
		variable("unfilled", "variables.fresh.filter(o, 'name' in o && !('content' in o))"),
		variable("unnamed", "variables.fresh.filter(o, !('name' in o))"),
		variable("unknown", "variables.fresh.filter(o, 'name' in o && 'content' in o && (!(o.name in variables.published) || variables.published[o.name] != '"+indexHasContent+"'))"),
		variable("previous", "oldObject == null ? [] : "+gmsaEntries("oldObject")),
		variable("kept", "variables.all.filter(o, !(o in variables.fresh))"),
		variable("changed", "request.operation != 'UPDATE' ? [] : variables.kept.filter(o, !(o in variables.previous)) + variables.previous.filter(o, !(o in variables.kept))"),
		variable("before", "variables.previous.filter(p, p.kind == variables.changed[0].kind && p.owner == variables.changed[0].owner)"),
		variable("after", "variables.kept.filter(p, p.kind == variables.changed[0].kind && p.owner == variables.changed[0].owner)"),
		variable("nameChanged", "(size(variables.before) > 0 && 'name' in variables.before[0]) != (size(variables.after) > 0 && 'name' in variables.after[0]) || "+
			"(size(variables.before) > 0 && size(variables.after) > 0 && 'name' in variables.before[0] && 'name' in variables.after[0] && variables.before[0].name != variables.after[0].name)"),
		variable("contentChanged", "(size(variables.before) > 0 && 'content' in variables.before[0]) != (size(variables.after) > 0 && 'content' in variables.after[0]) || "+
			"(size(variables.before) > 0 && size(variables.after) > 0 && 'content' in variables.before[0] && 'content' in variables.after[0] && variables.before[0].content != variables.after[0].content)"),
	}, authorizationVariables()...)
}

// doesNotExist is the webhook's message for a name without a credspec, or a
// credspec without content, of the entry o.
func doesNotExist(o string) string {
	return fmt.Sprintf("(%[1]s.name in variables.published ? 'cred spec ' + %[1]s.name + ' does not have a credspec key' : 'cred spec ' + %[1]s.name + ' does not exist')", o)
}

// unauthorizedHint follows an authorization refusal of the credspec named
// by the CEL expression name, as the webhook's hint does. The parameters
// (the index) do not say which GmsaAccount generates the credspec, so the
// hint cannot name it as the webhook does.
func unauthorizedHint(name string) string {
	return fmt.Sprintf("(%[1]s in variables.published ? '; add {namespace: ' + request.namespace + ', name: ' + variables.serviceAccount + '} to the spec.serviceAccounts of the GmsaAccount that generates or names this cred spec' : '')", name)
}

// admitValidations check, in the webhook's order: names the mutation could
// not fill (the mutating webhook's refusal), content without a name,
// authorization, names given with content that do not exist, and, on
// UPDATE, that no gMSA setting changed.
func admitValidations() []admissionregistrationv1.Validation {
	forbidden := metav1.StatusReasonForbidden
	invalid := metav1.StatusReasonInvalid
	authorization := make([]admissionregistrationv1.Validation, 0, AuthorizedNames+1)
	for i := range AuthorizedNames {
		name := fmt.Sprintf("variables.names[%d]", i)
		authorization = append(authorization, admissionregistrationv1.Validation{
			// A name seen at an earlier position was checked there.
			Expression: fmt.Sprintf("size(variables.names) <= %[1]d || variables.names.indexOf(%[2]s) < %[1]d || %[3]s", i, name, authorized(name)), Reason: &forbidden,
			MessageExpression: "'service account \"' + variables.serviceAccount + '\" is not authorized to `use` GMSA cred spec \"' + " + name + " + '\"' + " + unauthorizedHint(name),
		})
	}
	authorization = append(authorization, admissionregistrationv1.Validation{
		Expression: fmt.Sprintf("variables.names.all(n, variables.names.indexOf(n) < %d)", AuthorizedNames), Reason: &forbidden,
		Message: fmt.Sprintf("the pod names more than %d distinct GMSA cred specs, the most a ValidatingAdmissionPolicy can authorize in one request (GmsaStack spec.admission.mode Policy); use fewer, or mode Webhook", AuthorizedNames),
	})
	return slices.Concat([]admissionregistrationv1.Validation{
		{Expression: "size(variables.unfilled) == 0", Reason: &invalid, MessageExpression: doesNotExist("variables.unfilled[0]")},
		{Expression: "size(variables.unnamed) == 0", Reason: &invalid,
			MessageExpression: "variables.unnamed[0].kind + ' \"' + variables.unnamed[0].owner + '\" has a GMSA cred spec set, but does not define the name of the corresponding resource'"},
	}, authorization, []admissionregistrationv1.Validation{
		{Expression: "size(variables.unknown) == 0", Reason: &invalid, MessageExpression: doesNotExist("variables.unknown[0]")},
		{Expression: "size(variables.changed) == 0", Reason: &forbidden,
			MessageExpression: "'cannot update an existing pod\\'s GMSA settings (GMSA ' + (variables.nameChanged && variables.contentChanged ? 'name and contents' : (variables.nameChanged ? 'name' : 'contents')) + " +
				"' modified on ' + variables.changed[0].kind + ' \"' + variables.changed[0].owner + '\")'"},
	})
}

// AuthorizedNames is how many distinct gMSA names one request may carry in
// Policy mode: each takes an authorization check of its own validation
// (the runtime cost budget of one policy allows 28), and a pod with more is
// refused.
const AuthorizedNames = 16

func contentVariables() []admissionregistrationv1.Variable {
	return append([]admissionregistrationv1.Variable{
		// Content that differs from this shard's (names of other shards
		// are checked by theirs).
		variable("mismatched", "variables.fresh.filter(o, 'name' in o && 'content' in o && o.name in variables.published && variables.published[o.name] != o.content)"),
	}, authorizationVariables()...)
}

// contentValidations: content given with a name equals the published
// content. A service account that may not use the credspec is refused by
// the other policy, and learns nothing here.
func contentValidations() []admissionregistrationv1.Validation {
	invalid := metav1.StatusReasonInvalid
	return []admissionregistrationv1.Validation{{
		Expression: "size(variables.mismatched) == 0 || !" + authorized("variables.mismatched[0].name"), Reason: &invalid,
		MessageExpression: "'the GMSA cred spec contents for ' + variables.mismatched[0].kind + ' \"' + variables.mismatched[0].owner + " +
			"'\" does not match the contents of GMSA resource \"' + variables.mismatched[0].name + '\"'",
	}}
}
