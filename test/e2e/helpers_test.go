//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kubectl runs kubectl against the cluster and returns its standard output;
// a failure fails the spec with both outputs.
func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := kubectlErr(args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %s", strings.Join(args, " "))
	return out
}

func kubectlErr(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cfg.kubectl, append([]string{"--kubeconfig", cfg.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// kubectlCombined runs kubectl and returns its standard output and error
// (warnings) together, failing the spec on error.
func kubectlCombined(args ...string) string {
	GinkgoHelper()
	return run(cfg.kubectl, append([]string{"--kubeconfig", cfg.kubeconfig}, args...)...)
}

// run runs a command and returns its combined output, failing the spec on error.
func run(name string, args ...string) string {
	GinkgoHelper()
	out, err := exec.Command(name, args...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s %s: %s", name, strings.Join(args, " "), out)
	return string(out)
}

// ctr runs containerd's ctr in the Kubernetes namespace.
func ctr(args ...string) string {
	GinkgoHelper()
	return run(cfg.ctr, append([]string{"--address", cfg.ctrdSock, "-n", "k8s.io"}, args...)...)
}

// containerPID is the host PID of a running container's init process.
func containerPID(containerID string) int {
	GinkgoHelper()
	id := strings.TrimPrefix(containerID, "containerd://")
	for _, line := range strings.Split(ctr("tasks", "ls"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			Expect(err).NotTo(HaveOccurred())
			return pid
		}
	}
	Fail("no running task for container " + id)
	return 0
}

// procUIDs is the real, effective, saved and filesystem uid of a process.
func procUIDs(pid int) string {
	GinkgoHelper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Uid:") {
			return strings.Join(strings.Fields(strings.TrimPrefix(line, "Uid:")), " ")
		}
	}
	return ""
}

// rootMountReadOnly tells whether a process's / is mounted read-only.
func rootMountReadOnly(pid int) bool {
	GinkgoHelper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[4] == "/" {
			for _, o := range strings.Split(f[5], ",") {
				if o == "ro" {
					return true
				}
			}
			return false
		}
	}
	return false
}

// gmsaPod is a Windows pod that names the credential spec and runs as sa.
func gmsaPod(namespace, sa, credspec string) *corev1.Pod {
	p := plainPod(namespace)
	p.GenerateName = "gmsa-load-"
	p.Spec.ServiceAccountName = sa
	p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
	p.Spec.SecurityContext = &corev1.PodSecurityContext{
		WindowsOptions: &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: ptr.To(credspec)},
	}
	return p
}

// plainPod mentions no gMSA at all.
func plainPod(namespace string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "plain-", Namespace: namespace},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: pauseImage}},
		},
	}
}

// dryRunCreate creates the pod with server-side dry run: every admission
// webhook runs, nothing is stored. It returns the admitted pod.
func dryRunCreate(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
	p = p.DeepCopy()
	err := k8s.Create(ctx, p, client.DryRunAll)
	return p, err
}

// credSpecContent is the pod-level credspec content the webhook filled in.
func credSpecContent(p *corev1.Pod) string {
	if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.WindowsOptions == nil ||
		p.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec == nil {
		return ""
	}
	return *p.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec
}

// loadGen sends server-dry-run creations of gMSA pods at a steady rate and
// counts what failed: an error, or a pod admitted without its credspec
// filled in.
type loadGen struct {
	rate    int
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	ok      int
	failed  int
	errs    map[string]int
	lat     []time.Duration
	started time.Time
	// countFrom, when set, makes requests started before it not count.
	countFrom atomic.Pointer[time.Time]
	skipped   int
}

func startLoad(rate int) *loadGen {
	l := &loadGen{rate: rate, stop: make(chan struct{}), errs: map[string]int{}, started: time.Now()}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer GinkgoRecover()
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one()
			}()
		}
	}()
	return l
}

func (l *loadGen) one() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	begin := time.Now()
	p, err := dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
	d := time.Since(begin)
	l.mu.Lock()
	defer l.mu.Unlock()
	// A request is not counted if it began before countFrom, or while
	// countFrom lay in the future.
	if from := l.countFrom.Load(); from != nil && (begin.Before(*from) || time.Now().Before(*from)) {
		l.skipped++
		return
	}
	switch {
	case err != nil:
		l.failed++
		l.errs[shortErr(err)]++
	case credSpecContent(p) == "":
		l.failed++
		l.errs["admitted without the credspec content"]++
	default:
		l.ok++
		l.lat = append(l.lat, d)
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 240 {
		s = s[:240] + "..."
	}
	return s
}

// Stop ends the load, waits for the requests in flight, and reports.
func (l *loadGen) Stop(scenario string) (ok, failed int) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	secs := time.Since(l.started).Seconds()
	msg := fmt.Sprintf("LOAD %-40s %5d admitted, %3d failed in %.0fs (%.1f/s)", scenario, l.ok, l.failed, secs, float64(l.ok+l.failed)/secs)
	if l.skipped > 0 {
		msg += fmt.Sprintf(", %d not counted (sent while the API server was down)", l.skipped)
	}
	report(msg)
	for e, n := range l.errs {
		report(fmt.Sprintf("    %dx %s", n, e))
	}
	return l.ok, l.failed
}

// report prints a result line and keeps it for the summary at the end.
var (
	reportMu    sync.Mutex
	reportLines []string
)

func report(line string) {
	reportMu.Lock()
	reportLines = append(reportLines, line)
	reportMu.Unlock()
	GinkgoWriter.Println(line)
	fmt.Fprintln(os.Stderr, line)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// gone reports whether obj no longer exists.
func gone(ctx context.Context, obj client.Object) bool {
	err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	return apierrors.IsNotFound(err)
}

// restartAPIServer stops kube-apiserver by its recorded PID (SIGTERM: it
// drains, which takes up to its 60 s request timeout while watches are
// open) and starts it again the way up.sh did, recording the new PID. It
// returns when /readyz answers again, with the time it was unavailable.
func restartAPIServer() (down time.Duration) {
	GinkgoHelper()
	pidFile := filepath.Join(cfg.dir, "pids", "kube-apiserver.pid")
	b, err := os.ReadFile(pidFile)
	Expect(err).NotTo(HaveOccurred())
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	Expect(err).NotTo(HaveOccurred())
	begin := time.Now()
	Expect(syscall.Kill(pid, syscall.SIGTERM)).To(Succeed())
	Eventually(func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) }, 120*time.Second, 100*time.Millisecond).Should(BeTrue())
	logf, err := os.OpenFile(filepath.Join(cfg.dir, "logs", "kube-apiserver.log"), os.O_APPEND|os.O_WRONLY, 0)
	Expect(err).NotTo(HaveOccurred())
	defer logf.Close()
	cmd := exec.Command(filepath.Join(cfg.dir, "apiserver.sh"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	Expect(cmd.Start()).To(Succeed())
	go func() { _ = cmd.Wait() }()
	Expect(os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)).To(Succeed())
	Eventually(func() error { _, err := kubectlErr("get", "--raw", "/readyz"); return err }, 120*time.Second, 200*time.Millisecond).Should(Succeed())
	ready := time.Since(begin)
	// A lone API server takes its address out of the kubernetes Service on
	// shutdown and puts it back after it starts: until kube-proxy routes the
	// Service again, pods (the webhook's access reviews) cannot reach it.
	Eventually(func() string {
		out, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").CombinedOutput()
		return string(out)
	}, 60*time.Second, 100*time.Millisecond).Should(ContainSubstring(`"default/kubernetes:https" -m tcp -j DNAT`))
	report(fmt.Sprintf("kube-apiserver restart: /readyz after %.1fs, kubernetes Service routed again %.1fs later", ready.Seconds(), (time.Since(begin) - ready).Seconds()))
	return time.Since(begin)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
