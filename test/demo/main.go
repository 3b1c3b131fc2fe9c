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
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
	cmd := exec.Command(d.kubectl, append([]string{"--kubeconfig", d.env.Kubeconfig}, args...)...)
	cmd.Dir = d.root
	out, err := cmd.CombinedOutput()
	fmt.Print(indent(string(out)))
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func indent(s string) string {
	if s == "" {
		return s
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func run(managerBin string, keep bool) (err error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	d := &demo{root: root, kubectl: filepath.Join(harness.AssetsDir(root), "kubectl")}

	d.say("Starting a local control plane: etcd, kube-apiserver %s and kube-controller-manager (no cluster needed)", harness.KubeVersion)
	start := time.Now()
	if d.env, err = harness.Start(harness.Options{}); err != nil {
		return err
	}
	defer func() {
		fmt.Println("\n== Stopping the manager and the control plane")
		if stopErr := d.env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	fmt.Printf("  up in %.1fs; API server at %s\n", time.Since(start).Seconds(), d.env.Config.Host)

	d.say("The CRDs are installed: gmsa.io's GmsaStack and GmsaAccount, and windows.k8s.io's GMSACredentialSpec")
	if _, err := d.run("get", "crds"); err != nil {
		return err
	}

	d.say("Running the operator's manager (%s) against it", managerBin)
	stopManager, err := startManager(filepath.Join(root, managerBin), d.env.Kubeconfig)
	if err != nil {
		return err
	}
	defer stopManager()

	d.say("Applying config/samples: one GmsaStack (the cluster's gMSA stack) and one GmsaAccount (the docs' WebApp1 gMSA)")
	if _, err := d.run("apply", "--server-side", "-k", "config/samples"); err != nil {
		return err
	}

	d.say("What the API server now holds")
	if _, err := d.run("get", "gmsastacks,gmsaaccounts"); err != nil {
		return err
	}
	if _, err := d.run("get", "gmsaaccount", "webapp1", "-o", "jsonpath={.spec.credentialSpec}{\"\\n\"}"); err != nil {
		return err
	}

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

// startManager runs the manager binary as its own process, as in a
// cluster, and waits until its readiness endpoint answers.
func startManager(bin, kubeconfig string) (stop func(), err error) {
	probe, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--health-probe-bind-address="+probe, "--metrics-bind-address="+metrics)
	logFile, err := os.CreateTemp("", "gmsa-demo-manager-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start manager: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logFile.Close()
		_ = os.Remove(logFile.Name())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("  manager ready (pid %d; health on %s, metrics on %s; log %s)\n", cmd.Process.Pid, probe, metrics, logFile.Name())
				return stop, nil
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logFile.Name())
			stop()
			return nil, fmt.Errorf("manager exited:\n%s", log)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("manager not ready after 60s")
		}
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
