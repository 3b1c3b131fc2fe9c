package reconcilekit

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// WriteStatus patches obj's status (at *status) to next, only when they
// differ: a reconcile that changes nothing writes nothing. When Stalled
// appears, or its message changes, it records a Warning Event with the
// reason, so that `kubectl describe` and event exporters show why the object
// stopped.
func WriteStatus[S any](ctx context.Context, c client.Client, rec recorder.EventRecorder, obj client.Object, status *S, next S, conditions func(*S) []metav1.Condition) error {
	if equality.Semantic.DeepEqual(*status, next) {
		return nil
	}
	if st := meta.FindStatusCondition(conditions(&next), ConditionStalled); st != nil {
		if old := meta.FindStatusCondition(conditions(status), ConditionStalled); old == nil || old.Message != st.Message {
			rec.Eventf(obj, nil, corev1.EventTypeWarning, st.Reason, "Refuse", "%s", st.Message)
		}
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	*status = next
	if err := c.Status().Patch(ctx, obj, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if ready := meta.FindStatusCondition(conditions(&next), ConditionReady); ready != nil {
		log.FromContext(ctx).Info("status written", "ready", ready.Status, "reason", ready.Reason)
	}
	return nil
}
