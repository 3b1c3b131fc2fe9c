package reconcilekit

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// DeleteOwned deletes obj (as read, with its UID) if its controller owner is
// owner, and reports whether it did. The delete carries a UID precondition,
// so an object replaced meanwhile by someone else is never deleted. An
// object already gone, or replaced (the precondition fails with a
// Conflict), counts as not deleted and is no error.
func DeleteOwned(ctx context.Context, c client.Client, obj client.Object, owner types.UID) (bool, error) {
	if ref := metav1.GetControllerOf(obj); ref == nil || ref.UID != owner {
		log.FromContext(ctx).V(1).Info("not deleting an object of another owner", "object", client.ObjectKeyFromObject(obj))
		return false, nil
	}
	uid := obj.GetUID()
	err := c.Delete(ctx, obj, client.Preconditions{UID: &uid})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete %s: %w", Describe(obj), err)
	}
	log.FromContext(ctx).Info("deleted", "object", Describe(obj))
	return true, nil
}
