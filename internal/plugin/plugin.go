// Package plugin is the `kubectl gmsa` command line: `doctor` explains why a
// gMSA pod is refused or runs without its gMSA, `migrate` writes the
// GmsaAccounts that take over gMSA set up by hand. It finds the cluster as
// kubectl does (KUBECONFIG, --kubeconfig, --context, -n).
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/doctor"
	"github.com/gmsa-operator/gmsa-operator/internal/migrate"
)

// Exit codes.
const (
	// ExitOK: every check passed; or every grant was carried over.
	ExitOK = 0
	// ExitProblems: a check failed or warned; or some hand-made RBAC must
	// stay.
	ExitProblems = 1
	// ExitError: the command could not run (bad flags, no cluster).
	ExitError = 2
)

// errProblems makes Run exit with ExitProblems without printing an error.
var errProblems = errors.New("problems found")

// Run runs `kubectl gmsa` with args (without the program name) and returns
// the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, version string) int {
	cmd := newRoot(stdin, stdout, stderr, version)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errProblems):
		return ExitProblems
	default:
		fmt.Fprintln(stderr, "error:", err)
		return ExitError
	}
}

type globals struct {
	kubeconfig, context, namespace string
}

func (g *globals) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
	overrides.Context.Namespace = g.namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

func (g *globals) client() (client.Client, string, error) {
	cc := g.clientConfig()
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", err
	}
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(gmsav1alpha1.AddToScheme(s))
	c, err := client.New(cfg, client.Options{Scheme: s})
	return c, ns, err
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer, version string) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "kubectl gmsa",
		Short:         "Diagnose gMSA pods and migrate hand-made gMSA setups to gmsa-operator",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
	f.StringVar(&g.context, "context", "", "The kubeconfig context to use.")
	f.StringVarP(&g.namespace, "namespace", "n", "", "The namespace (default: the context's).")
	root.AddCommand(newDoctor(g), newMigrate(g))
	return root
}

func newDoctor(g *globals) *cobra.Command {
	var (
		file, serviceAccount, output string
		credSpecs                    []string
	)
	cmd := &cobra.Command{
		Use:   "doctor (pod/NAME | -f FILE | --service-account [NS/]NAME --credspec NAME)",
		Short: "Check every link of the gMSA chain for a pod, a pod manifest or a service account",
		Long: `Check every link of the gMSA chain the way admission sees it: the GmsaStack, its admission path,
the namespace, each named credspec, the GmsaAccount that makes it, the service account's right to use
it, user-given content, the webhook certificate and Windows-only placement. One line per check; the
fix under each failure. For a running pod, the Windows-side commands to run in it.

Exit status: 0 when every check passes, 1 when one fails or warns, 2 when the doctor cannot run.`,
		Example: `  kubectl gmsa doctor pod/web-0 -n team-a
  kubectl gmsa doctor -f deploy.yaml -n team-a
  kubectl gmsa doctor --service-account team-a/web --credspec webapp1 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			given := 0
			for _, set := range []bool{len(args) == 1, file != "", serviceAccount != ""} {
				if set {
					given++
				}
			}
			if given != 1 {
				return errors.New("give exactly one of pod/NAME, -f FILE or --service-account NAME")
			}
			if serviceAccount == "" && len(credSpecs) > 0 {
				return errors.New("--credspec goes with --service-account")
			}
			c, ns, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var t doctor.Target
			switch {
			case len(args) == 1:
				name, ok := strings.CutPrefix(args[0], "pod/")
				if !ok {
					name, ok = strings.CutPrefix(args[0], "pods/")
				}
				if !ok && strings.Contains(args[0], "/") {
					return fmt.Errorf("%q: only pods are examined by name (pod/NAME); use -f for a workload manifest", args[0])
				}
				pod := &corev1.Pod{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
					return fmt.Errorf("get pod %s/%s: %w", ns, name, err)
				}
				t = doctor.ForPod(pod, "pod")
			case file != "":
				var data []byte
				if file == "-" {
					data, err = io.ReadAll(cmd.InOrStdin())
				} else {
					data, err = os.ReadFile(file)
				}
				if err != nil {
					return err
				}
				if t, err = doctor.ForManifest(data, ns); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			default:
				if len(credSpecs) == 0 {
					return errors.New("--service-account needs at least one --credspec")
				}
				saNS, saName, ok := strings.Cut(serviceAccount, "/")
				if !ok {
					saNS, saName = ns, serviceAccount
				}
				t = doctor.ForServiceAccount(saNS, saName, credSpecs)
			}
			d := &doctor.Doctor{Client: c}
			rep := d.Run(ctx, t)
			if output == "json" {
				err = doctor.WriteJSON(cmd.OutOrStdout(), rep)
			} else {
				err = doctor.WriteText(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return err
			}
			if !rep.OK {
				return errProblems
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "A pod or workload manifest not applied yet ('-' reads stdin).")
	f.StringVar(&serviceAccount, "service-account", "", "A service account, NAMESPACE/NAME or NAME in -n.")
	f.StringSliceVar(&credSpecs, "credspec", nil, "A credspec name the service account's pods would use (repeatable).")
	f.StringVarP(&output, "output", "o", "text", "text or json.")
	return cmd
}

func newMigrate(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Write the GmsaAccounts that take over hand-made GMSACredentialSpecs and their RBAC",
		Long: `Read the cluster's GMSACredentialSpecs that no GmsaAccount manages and the RBAC that grants use of
them (ClusterRoles and Roles, with or without resourceNames, and their RoleBindings and
ClusterRoleBindings), and write on stdout the GmsaAccounts that give every service account's pods
exactly the same admission answers. Each account takes its credspec over with credentialSpec.existing:
the operator only reads it, never changes it. Nothing is written to the cluster.

On stderr: what could not be carried over and why (users, groups, grants of every credspec,
cluster-wide grants to every service account), and the hand-made objects that may be deleted once the
accounts are Ready.

Exit status: 0 when everything was carried over, 1 when some hand-made RBAC must stay (the YAML is
written all the same), 2 when it cannot run.`,
		Example: `  kubectl gmsa migrate > accounts.yaml
  kubectl apply -f accounts.yaml && kubectl wait gmsaaccount --all --for=condition=Ready`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			in, err := readCluster(cmd.Context(), c)
			if err != nil {
				return err
			}
			res := migrate.Plan(in)
			if err := migrate.WriteAccounts(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			if err := migrate.WriteReport(cmd.ErrOrStderr(), res); err != nil {
				return err
			}
			if res.Incomplete() {
				return errProblems
			}
			return nil
		},
	}
	return cmd
}

func readCluster(ctx context.Context, c client.Client) (migrate.Input, error) {
	var in migrate.Input
	specs := &unstructured.UnstructuredList{}
	specs.SetAPIVersion(credspeccrd.Group + "/v1")
	specs.SetKind(credspeccrd.Kind + "List")
	accounts := &gmsav1alpha1.GmsaAccountList{}
	crs := &rbacv1.ClusterRoleList{}
	roles := &rbacv1.RoleList{}
	crbs := &rbacv1.ClusterRoleBindingList{}
	rbs := &rbacv1.RoleBindingList{}
	for _, l := range []struct {
		what string
		list client.ObjectList
	}{
		{"GMSACredentialSpecs", specs}, {"GmsaAccounts", accounts}, {"ClusterRoles", crs}, {"Roles", roles},
		{"ClusterRoleBindings", crbs}, {"RoleBindings", rbs},
	} {
		if err := c.List(ctx, l.list); err != nil {
			return in, fmt.Errorf("list %s: %w", l.what, err)
		}
	}
	in.CredSpecs, in.Accounts = specs.Items, accounts.Items
	in.ClusterRoles, in.Roles, in.ClusterRoleBindings, in.RoleBindings = crs.Items, roles.Items, crbs.Items, rbs.Items
	return in, nil
}
