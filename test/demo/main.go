// Command demo shows gmsa-operator at work on a local control plane that it
// starts itself (etcd, kube-apiserver and kube-controller-manager; no
// cluster needed): it installs the CRDs, runs the manager, applies
// config/samples and prints what happened. With -keep it leaves everything
// running until Ctrl-C, for exploring with kubectl.
//
// Run it with `make demo` (or `make demo KEEP=1`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

func main() {
	managerBin := flag.String("manager", "bin/manager", "path of the manager binary")
	keep := flag.Bool("keep", false, "keep the control plane and the manager running until Ctrl-C")
	flag.Parse()
	if err := run(*managerBin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

type demo struct {
	root    string
	kubectl string
	env     *harness.Env
	step    int
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Printf("\n== %d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// kubectl runs kubectl against the local control plane, echoing the
// command and its output as a newcomer would type and see them.
func (d *demo) run(args ...string) (string, error) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	full := append([]string{"--kubeconfig", d.env.Kubeconfig}, args...)
	if args[0] == "gmsa" { // kubectl takes no flags before a plugin's name
		full = append(append([]string(nil), args...), "--kubeconfig", d.env.Kubeconfig)
	}
	cmd := exec.Command(d.kubectl, full...)
	cmd.Dir = d.root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	fmt.Print(indent(string(out)))
	if err != nil {
		// kubectl's warnings (such as "not namespace scoped") are noise
		// unless the command failed.
		fmt.Print(indent(stderr.String()))
		return string(out) + stderr.String(), fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// poll runs a kubectl command until it succeeds, printing only the final
// attempt.
func (d *demo) poll(timeout time.Duration, args ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.Command(d.kubectl, append([]string{"--kubeconfig", d.env.Kubeconfig}, args...)...)
		if err := cmd.Run(); err == nil || time.Now().After(deadline) {
			_, err := d.run(args...)
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitFor runs a kubectl command until its output is want, printing only
// the final attempt.
func (d *demo) waitFor(timeout time.Duration, want string, args ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command(d.kubectl, append([]string{"--kubeconfig", d.env.Kubeconfig}, args...)...).Output()
		if (err == nil && strings.TrimSpace(string(out)) == want) || time.Now().After(deadline) {
			got, err := d.run(args...)
			if err == nil && strings.TrimSpace(got) != want {
				err = fmt.Errorf("kubectl %s: %q after %v, want %q", strings.Join(args, " "), strings.TrimSpace(got), timeout, want)
			}
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func indent(s string) string {
	if s == "" {
		return s
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// demoImage stands for the operator's own image: the manager passes it to
// the webhook Deployment, and the kubelet this program plays runs it.
const demoImage = "gmsa-operator:demo"

func run(managerBin string, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo serves the webhook where the API server calls it, on port 443 of a loopback Service address: run it as root")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	d := &demo{root: root, kubectl: filepath.Join(harness.AssetsDir(root), "kubectl")}
	// kubectl finds its plugins on PATH: make build puts kubectl-gmsa in bin/.
	if err := os.Setenv("PATH", filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
		return err
	}

	d.say("Starting a local control plane: etcd, kube-apiserver %s and kube-controller-manager (no cluster needed)", harness.KubeVersion)
	start := time.Now()
	if d.env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.107.0/24", NoCredentialSpecCRD: true}); err != nil {
		return err
	}
	defer func() {
		fmt.Println("\n== Stopping the manager and the control plane")
		if stopErr := d.env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	fmt.Printf("  up in %.1fs; API server at %s\n", time.Since(start).Seconds(), d.env.Config.Host)

	d.say("gmsa.io's CRDs are installed (GmsaStack, GmsaAccount); windows.k8s.io's GMSACredentialSpec is not: the GmsaStack installs it")
	if _, err := d.run("get", "crds"); err != nil {
		return err
	}

	d.say("Running the operator's manager (%s) against it", managerBin)
	logFile, err := os.CreateTemp("", "gmsa-demo-manager-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	// The operator's own image is the webhook's default image (OLM passes
	// it as RELATED_IMAGE_WEBHOOK).
	if err := os.Setenv(stack.OperatorImageEnv, demoImage); err != nil {
		return err
	}
	mgr, err := harness.StartManager(filepath.Join(root, managerBin), d.env.Kubeconfig, logFile)
	if err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return fmt.Errorf("%w; its log:\n%s", err, log)
	}
	defer mgr.Stop()
	fmt.Printf("  manager ready (pid %d; health on %s, metrics on %s; log %s)\n", mgr.PID(), mgr.ProbeAddr, mgr.MetricsAddr, logFile.Name())

	d.say("This program plays the kubelet: it runs the webhook's code on the Service's loopback ClusterIP:443 with the certificate from the operator's Secret, and marks the webhook pods Ready when it answers")
	kubeletLog, err := os.CreateTemp("", "gmsa-demo-kubelet-*.log")
	if err != nil {
		return err
	}
	defer kubeletLog.Close()
	kl := harness.StartKubelet(harness.KubeletOptions{
		Client: d.env.Client, Config: d.env.Config, Namespace: "gmsa-system", PodIP: "192.0.2.70",
		Images: []string{demoImage}, Log: kubeletLog,
	})
	defer kl.Stop()
	fmt.Printf("  (its log: %s)\n", kubeletLog.Name())

	d.say("Applying config/samples: one GmsaStack (the cluster's gMSA stack, all defaults) and one GmsaAccount (the docs' WebApp1 gMSA, for default/default and all of team-a)")
	if _, err := d.run("apply", "--server-side", "-k", "config/samples"); err != nil {
		return err
	}

	d.say("The GmsaStack installs the CRD, the webhook's RBAC, a CA and serving certificate, the Deployment and Service, and once the webhook is available, its registration")
	if _, err := d.run("wait", "--for=condition=Ready", "--timeout=120s", "gmsastack/default"); err != nil {
		_, _ = d.run("get", "gmsastack", "default", "-o", "yaml")
		return err
	}
	if _, err := d.run("get", "gmsastacks"); err != nil {
		return err
	}
	if _, err := d.run("get", "gmsastack", "default", "-o", `jsonpath={range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}`); err != nil {
		return err
	}
	if _, err := d.run("-n", "gmsa-system", "get", "deployments,services,secrets,poddisruptionbudgets", "-l", "app.kubernetes.io/managed-by=gmsa-operator"); err != nil {
		return err
	}
	if _, err := d.run("get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-l", "app.kubernetes.io/managed-by=gmsa-operator"); err != nil {
		return err
	}

	d.say("The operator reconciles the GmsaAccount: it generates the credspec and the RBAC for it")
	if _, err := d.run("wait", "--for=condition=Ready", "--timeout=60s", "gmsaaccount/webapp1"); err != nil {
		return err
	}
	if _, err := d.run("get", "gmsaaccounts"); err != nil {
		return err
	}
	if _, err := d.run("get", "gmsaaccount", "webapp1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}{"\n"}`); err != nil {
		return err
	}

	d.say("The generated GMSACredentialSpec is the Kubernetes docs' WebApp1 credspec")
	if _, err := d.run("get", "gmsacredentialspec", "webapp1", "-o", "jsonpath={.credspec}{\"\\n\"}"); err != nil {
		return err
	}

	d.say("A ClusterRole allows `use` of exactly that credspec; a RoleBinding grants it to default/default")
	if _, err := d.run("get", "clusterrole", "gmsa:webapp1", "-o", "jsonpath={.rules}{\"\\n\"}"); err != nil {
		return err
	}
	if _, err := d.run("get", "rolebindings", "-A", "-l", "gmsa.io/account=webapp1"); err != nil {
		return err
	}
	if _, err := d.run("auth", "can-i", "use", "gmsacredentialspecs.windows.k8s.io/webapp1", "-n", "default", "--as=system:serviceaccount:default:default"); err != nil {
		return err
	}
	fmt.Println("  an unlisted service account may not:")
	if out, _ := d.run("auth", "can-i", "use", "gmsacredentialspecs.windows.k8s.io/webapp1", "-n", "default", "--as=system:serviceaccount:default:intruder"); !strings.HasPrefix(out, "no") {
		return fmt.Errorf("an unlisted service account may use the credspec")
	}

	d.say("team-a did not exist yet; once it is created, every service account in it may use the gMSA")
	if _, err := d.run("create", "namespace", "team-a"); err != nil {
		return err
	}
	if err := d.poll(30*time.Second, "auth", "can-i", "use", "gmsacredentialspecs.windows.k8s.io/webapp1", "-n", "team-a", "--as=system:serviceaccount:team-a:builder", "--as-group=system:serviceaccounts:team-a"); err != nil {
		return err
	}

	d.say("Drift is repaired: delete the ClusterRole and watch it come back")
	if _, err := d.run("delete", "clusterrole", "gmsa:webapp1"); err != nil {
		return err
	}
	if err := d.poll(30*time.Second, "get", "clusterrole", "gmsa:webapp1", "-o", "name"); err != nil {
		return err
	}

	d.say("A Windows pod of default/default names the credspec: the API server calls the webhook over TLS, which fills in the JSON")
	pod := func(name, sa string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":"default"},"spec":{"serviceAccountName":%q,"nodeSelector":{"kubernetes.io/os":"windows"},"securityContext":{"windowsOptions":{"gmsaCredentialSpecName":"webapp1"}},"containers":[{"name":"iis","image":"windows/servercore/iis:windowsservercore-ltsc2022"}]}}`, name, sa)
	}
	podFile := filepath.Join(d.env.Dir, "pod.json")
	if err := os.WriteFile(podFile, []byte(pod("webapp1", "default")), 0o600); err != nil {
		return err
	}
	if _, err := d.run("apply", "-f", podFile); err != nil {
		return err
	}
	if _, err := d.run("get", "pod", "webapp1", "-o", `jsonpath={.spec.securityContext.windowsOptions.gmsaCredentialSpec}{"\n"}`); err != nil {
		return err
	}

	d.say("A pod of a service account that is not listed is denied by the validating webhook")
	if _, err := d.run("create", "serviceaccount", "intruder"); err != nil {
		return err
	}
	if err := os.WriteFile(podFile, []byte(pod("intruder", "intruder")), 0o600); err != nil {
		return err
	}
	if out, err := d.run("apply", "-f", podFile); err == nil || !strings.Contains(out, "is not authorized to `use` GMSA cred spec") {
		return fmt.Errorf("the webhook did not deny a pod of an unlisted service account")
	}
	fmt.Println("  (denied, as it should be)")

	d.say("kubectl gmsa doctor (the plugin, found by kubectl in bin/) explains the denied pod before it is applied: each check, and the fix")
	out, err := d.run("gmsa", "doctor", "-f", podFile)
	if err == nil || !strings.Contains(out, `FAIL  service account default/intruder may use "webapp1"`) {
		return fmt.Errorf("kubectl gmsa doctor did not find the missing grant of the denied pod (exit status: %v)", err)
	}
	fmt.Println("  (exit status 1: a check failed)")

	d.say("Kubernetes 1.36 and later need no webhook: switch the GmsaStack to Policy mode, where the API server fills in and checks credspecs itself")
	if _, err := d.run("patch", "gmsastack", "default", "--type", "merge", "-p", `{"spec":{"admission":{"mode":"Policy"}}}`); err != nil {
		return err
	}
	if err := d.waitFor(90*time.Second, "Policy True", "get", "gmsastack", "default", "-o", `jsonpath={.status.admission.mode}{" "}{.status.conditions[?(@.type=="Ready")].status}`); err != nil {
		return err
	}
	if _, err := d.run("get", "mutatingadmissionpolicies,validatingadmissionpolicies,mutatingwebhookconfigurations,deployments", "-A"); err != nil {
		return err
	}
	if err := os.WriteFile(podFile, []byte(strings.Replace(pod("webapp1-policy", "default"), `"name":"webapp1"`, `"name":"webapp1-policy"`, 1)), 0o600); err != nil {
		return err
	}
	if _, err := d.run("apply", "-f", podFile); err != nil {
		return err
	}
	if _, err := d.run("get", "pod", "webapp1-policy", "-o", `jsonpath={.spec.securityContext.windowsOptions.gmsaCredentialSpec}{"\n"}`); err != nil {
		return err
	}
	if err := os.WriteFile(podFile, []byte(pod("intruder-policy", "intruder")), 0o600); err != nil {
		return err
	}
	if out, err := d.run("apply", "-f", podFile); err == nil || !strings.Contains(out, "is not authorized to `use` GMSA cred spec") {
		return fmt.Errorf("Policy mode did not deny a pod of an unlisted service account")
	}
	fmt.Println("  (denied by the ValidatingAdmissionPolicy, with no webhook in the cluster)")

	d.say("Bad input is refused before anything is created: a credspec name with capitals (the Kubernetes docs' gmsa-WebApp1 trap)")
	bad := `{"apiVersion":"gmsa.io/v1alpha1","kind":"GmsaAccount","metadata":{"name":"trap"},"spec":{"credentialSpecName":"gmsa-WebApp1","credentialSpec":{"accountName":"WebApp1","domain":{"dnsName":"contoso.com","netBiosName":"CONTOSO","guid":"244818ae-87ac-4fcd-92ec-e79e5252348a","sid":"S-1-5-21-2126449477-2524075714-3094792973"}},"serviceAccounts":[{"namespace":"default"}]}}`
	f := filepath.Join(d.env.Dir, "trap.json")
	if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
		return err
	}
	if _, err := d.run("apply", "-f", f); err == nil {
		return fmt.Errorf("the API server accepted credentialSpecName gmsa-WebApp1")
	}
	fmt.Println("  (refused, as it should be)")

	if keep {
		fmt.Printf("\n== Everything stays up until Ctrl-C. In another shell:\n  export KUBECONFIG=%s\n  %s get gmsastacks,gmsaaccounts\n", d.env.Kubeconfig, d.kubectl)
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		<-ctx.Done()
	}
	return nil
}
