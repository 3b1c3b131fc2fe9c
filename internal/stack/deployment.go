package stack

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

// DeploymentStep judges the webhook Deployment as the stack reports it
// (the WebhookAvailable condition):
//   - no available replica: Waiting (the webhook configurations are held
//     back until one is);
//   - available and rolling out: Waiting, condition True, and the later
//     steps run (admission keeps working on the previous replicas);
//   - a rollout past its progress deadline (an image that never becomes
//     ready, say): Blocked (Stalled), since only a person can fix it;
//   - otherwise Done.
func (c Config) DeploymentStep(dep *appsv1.Deployment) reconcilekit.Step {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionWebhookAvailable}
	st, want := dep.Status, c.Replicas
	available := false
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentAvailable {
			available = cond.Status == corev1.ConditionTrue
		}
	}
	stuck := false
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded" {
			stuck = true
		}
	}
	pods := fmt.Sprintf("kubectl -n %s describe pods -l app.kubernetes.io/name=%s", c.Namespace, WebhookName)
	switch {
	case st.AvailableReplicas == 0 || !available:
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonDeploymentUnavailable
		step.Message = fmt.Sprintf("webhook Deployment %s/%s has %d of %d replicas available%s (%s)",
			c.Namespace, WebhookName, st.AvailableReplicas, want, deploymentProblem(dep), pods)
		if stuck {
			step.Progress = reconcilekit.Blocked
			step.Message += "; the rollout is past its progress deadline: fix spec.webhook.image or what keeps the pods from becoming ready"
		}
	case st.ObservedGeneration < dep.Generation || st.UpdatedReplicas < want || st.Replicas > want || st.AvailableReplicas < want:
		step.Progress, step.ConditionTrue, step.Continue = reconcilekit.Waiting, true, true
		step.Reason = gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("rolling out %s: %d of %d replicas updated, %d available; the previous replicas keep serving%s",
			c.Image, st.UpdatedReplicas, want, st.AvailableReplicas, deploymentProblem(dep))
		if stuck {
			step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonDeploymentUnavailable
			step.Message += fmt.Sprintf("; the rollout is past its progress deadline: fix spec.webhook.image or what keeps the new pods from becoming ready (%s)", pods)
		}
	default:
		step.Reason = gmsav1alpha1.ReasonSucceeded
		step.Message = fmt.Sprintf("%d of %d webhook replicas available, running %s", st.AvailableReplicas, want, c.Image)
	}
	return step
}

// deploymentProblem quotes the Deployment's own explanation, if any.
func deploymentProblem(dep *appsv1.Deployment) string {
	var msgs []string
	for _, c := range dep.Status.Conditions {
		if (c.Status != corev1.ConditionTrue || c.Reason == "ProgressDeadlineExceeded") && c.Message != "" {
			msgs = append(msgs, c.Message)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}
