// Command accounts measures how fast the operator converges N GmsaAccounts
// (each granting 3 service accounts in 3 namespaces) against the fastest a
// plain client can create the same objects (credspec, ClusterRole, 3
// RoleBindings) on the same local control plane in the same run: the
// baseline has no client-side rate limit, and runs at several
// concurrencies, the best of which is the baseline. The operator runs with
// its limits lifted and, at the sizes given, with its shipped defaults. For
// every run the report gives the CPU kube-apiserver and etcd used and the
// time the manager waited on its own rate limiter, and says what bound it.
// It then measures the manager's memory before and after 10,000 unrelated
// Secrets, RoleBindings and Namespaces are added.
//
// Run it with `make bench-accounts`; it prints a Markdown report.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/account"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
	"github.com/gmsa-operator/gmsa-operator/test/benchmark/report"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var namespaces = []string{"bench-a", "bench-b", "bench-c"}

func main() {
	sizes := flag.String("sizes", "1000,3000,10000", "comma-separated numbers of GmsaAccounts")
	baseConc := flag.String("baseline-concurrency", "8,32,96", "concurrencies the baseline runs at; the fastest is the baseline")
	workers := flag.Int("workers", 32, "the operator's --max-concurrent-reconciles with its limits lifted")
	defaultsAt := flag.String("defaults-at", "3000", "sizes at which the operator also runs with its shipped defaults (--kube-api-qps 50, burst 100, 4 workers)")
	runs := flag.Int("runs", 1, "runs of each measurement; the report gives the median and the range")
	unrelated := flag.Int("unrelated", 10000, "unrelated Secrets, RoleBindings and Namespaces (each) added before the second memory reading")
	managerBin := flag.String("manager", "bin/manager", "manager binary")
	out := flag.String("out", "", "also write the report into this Markdown file's accounts section (docs/benchmarks.md)")
	flag.Parse()
	o := options{workers: *workers, runs: *runs, unrelated: *unrelated, managerBin: *managerBin, out: *out}
	var err error
	if o.sizes, err = ints(*sizes); err == nil {
		if o.baseConc, err = ints(*baseConc); err == nil {
			o.defaultsAt, err = ints(*defaultsAt)
		}
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark failed:", err)
		os.Exit(1)
	}
}

type options struct {
	sizes, baseConc, defaultsAt []int
	workers, runs, unrelated    int
	managerBin, out             string
}

func ints(flagValue string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(flagValue, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", flagValue, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// profile is how the manager runs.
type profile struct {
	name string
	args []string
}

func lifted(workers int) profile {
	return profile{name: fmt.Sprintf("limits lifted (%d workers)", workers), args: []string{
		"--max-concurrent-reconciles=" + strconv.Itoa(workers), "--kube-api-qps=100000", "--kube-api-burst=200000"}}
}

var shipped = profile{name: "shipped defaults (qps 50, burst 100, 4 workers)"}

// measurement is one timed run and what the control plane spent on it.
type measurement struct {
	took          time.Duration
	apiCPU, etcd  time.Duration // CPU time of kube-apiserver and etcd
	managerCPU    time.Duration // CPU time of the manager (0 for the baseline)
	machineBusy   time.Duration // CPU time of the whole machine, all processes
	limiterWait   float64       // seconds the manager's requests waited on its rate limiter
	writesPerAcct float64
}

// boundBy says what limited a run: the client's own rate limiter when its
// requests spent, together, more than half the run waiting on it; else the
// control plane's CPU when kube-apiserver and etcd used most of the
// machine's cores; else the client itself (its concurrency).
func (m measurement) boundBy(workers int) string {
	secs := m.took.Seconds()
	cores := float64(runtime.NumCPU())
	cp := (m.apiCPU + m.etcd).Seconds() / secs
	busy := m.machineBusy.Seconds() / secs
	switch {
	case workers > 0 && m.limiterWait > 0.5*secs:
		return fmt.Sprintf("client rate limiter (on average %.1f requests waiting on it)", m.limiterWait/secs)
	case cp > 0.75*cores:
		return fmt.Sprintf("control-plane CPU (%.1f of %.0f cores)", cp, cores)
	case busy > 0.9*cores:
		return fmt.Sprintf("machine CPU (%.1f of %.0f cores busy; control plane %.1f, manager %.1f)", busy, cores, cp, m.managerCPU.Seconds()/secs)
	default:
		return fmt.Sprintf("client concurrency (control plane %.1f of %.0f cores, machine %.1f)", cp, cores, busy)
	}
}

func run(o options) error {
	logf.SetLogger(logr.Discard())
	env, err := harness.Start(harness.Options{NoControllerManager: true, ServiceCIDR: "127.0.103.0/24"})
	if err != nil {
		return err
	}
	defer env.Stop()
	cp, err := controlPlanePIDs()
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(env.Config)
	// No client-side limit: the baseline is the fastest a client can go.
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, ns := range append(namespaces, "noise") {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, o.managerBin)

	var w strings.Builder
	printf := func(format string, args ...any) { fmt.Fprintf(&w, format, args...); fmt.Printf(format, args...) }
	printf("## GmsaAccount convergence\n\n")
	printf("Command: `make bench-accounts` (`go run ./test/benchmark/accounts -out docs/benchmarks.md`)  \n")
	printf("Measured: %s, %s/%s, %d CPUs, %s; %d run(s) of each measurement (median, and the range when more than one).\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.runs)
	printf("Each GmsaAccount grants 3 service accounts in 3 namespaces: 5 objects (1 credspec, 1 ClusterRole, 3 RoleBindings). ")
	printf("Baseline: a plain client with no rate limit creates the same 5 objects per account at each concurrency in %v; the fastest is the baseline. ", o.baseConc)
	printf("The operator: time from creating the GmsaAccounts (at 8 parallel creates) until every one is Ready, seen through a watch. ")
	printf("CPU is the kube-apiserver's and etcd's own, from /proc, during the run; \"limiter\" is the time the manager's requests waited on its client-side rate limit (rest_client_rate_limiter_duration_seconds). One local kube-apiserver + etcd, on the same machine as the clients.\n\n")
	printf("| accounts | run | time | ratio to baseline | apiserver CPU | etcd CPU | manager CPU | limiter wait | writes/account | bound by |\n")
	printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	row := func(n int, name string, ms []measurement, base time.Duration, workers int) {
		m := median(ms)
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f%s", m.took.Seconds()/base.Seconds(), spreadRatio(ms, base))
		}
		printf("| %d | %s | %.1fs%s | %s | %.1fs | %.1fs | %.1fs | %.1fs | %.1f | %s |\n", n, name, m.took.Seconds(), spread(ms), ratio,
			m.apiCPU.Seconds(), m.etcd.Seconds(), m.managerCPU.Seconds(), m.limiterWait, m.writesPerAcct, m.boundBy(workers))
	}
	seq := 0
	var mgr *managerProcess
	defer func() {
		if mgr != nil {
			mgr.Stop()
		}
	}()
	var heapPerAccount float64
	total, baseTotal := 0, 0
	for _, n := range o.sizes {
		var best time.Duration
		for _, conc := range o.baseConc {
			var ms []measurement
			for r := 0; r < o.runs; r++ {
				seq++
				m, err := measure(cp, nil, func() error { return baseline(ctx, c, fmt.Sprintf("b%d", seq), n, conc) })
				if err != nil {
					return err
				}
				ms = append(ms, m)
				baseTotal += n
			}
			if t := median(ms).took; best == 0 || t < best {
				best = t
			}
			row(n, fmt.Sprintf("baseline, %d parallel", conc), ms, 0, 0)
		}
		profiles := []profile{lifted(o.workers)}
		if slices.Contains(o.defaultsAt, n) {
			profiles = append(profiles, shipped)
		}
		for _, p := range profiles {
			if mgr != nil {
				mgr.Stop()
			}
			if mgr, err = startManager(bin, env.Kubeconfig, p.args); err != nil {
				return err
			}
			if err := mgr.settle(); err != nil {
				return err
			}
			workers := o.workers
			if p.name == shipped.name {
				workers = 4
			}
			var ms []measurement
			for r := 0; r < o.runs; r++ {
				seq++
				prefix := fmt.Sprintf("a%d", seq)
				m, err := measure(cp, mgr, func() error { return operator(ctx, env.Config, c, prefix, n, 8) })
				if err != nil {
					return err
				}
				m.writesPerAcct /= float64(n)
				ms = append(ms, m)
				total += n
			}
			row(n, "operator, "+p.name, ms, best, workers)
		}
	}
	if mgr == nil {
		return nil
	}
	heap0, rss0, err := mgr.memory()
	if err != nil {
		return err
	}
	heapPerAccount = heap0 / float64(total)
	start := time.Now()
	if err := noise(ctx, c, o.unrelated, 32); err != nil {
		return err
	}
	noiseTime := time.Since(start)
	time.Sleep(10 * time.Second)
	heap1, rss1, err := mgr.memory()
	if err != nil {
		return err
	}
	mib := func(b float64) float64 { return b / (1 << 20) }
	printf("\n## Manager memory against unrelated objects\n\n")
	printf("After convergence of all accounts above (%d GmsaAccounts, each with its credspec, ClusterRole and RoleBindings, plus the baseline's %d credspecs, which the manager caches too, as it caches every credspec), heap in use per GmsaAccount: %.1f KiB. ",
		total, baseTotal, heapPerAccount/1024)
	printf("Then %d Secrets, %d RoleBindings and %d Namespaces without the operator's labels were added (%.0fs). Lowest of 5 readings, 1 s apart.\n\n", o.unrelated, o.unrelated, o.unrelated, noiseTime.Seconds())
	printf("| reading | heap in use | RSS |\n")
	printf("|---|---:|---:|\n")
	printf("| before | %.1f MiB | %.1f MiB |\n", mib(heap0), mib(rss0))
	printf("| after %d unrelated objects | %.1f MiB | %.1f MiB |\n", 3*o.unrelated, mib(heap1), mib(rss1))
	printf("| ratio | %.2f | %.2f |\n", heap1/heap0, rss1/rss0)
	if o.out != "" {
		return report.WriteSection(o.out, "accounts-benchmark", w.String())
	}
	return nil
}

// measure times f and reads the control plane's CPU and, when a manager
// runs, its rate-limiter wait and writes, around it.
func measure(cp []int, mgr *managerProcess, f func() error) (measurement, error) {
	api0, etcd0, err := cpuTimes(cp)
	if err != nil {
		return measurement{}, err
	}
	busy0, err := machineBusy()
	if err != nil {
		return measurement{}, err
	}
	var mgr0 time.Duration
	if mgr != nil {
		if mgr0, err = processCPU(mgr.PID()); err != nil {
			return measurement{}, err
		}
	}
	var lim0, w0 float64
	if mgr != nil {
		if lim0, err = mgr.limiterWait(); err != nil {
			return measurement{}, err
		}
		if w0, err = mgr.writes(); err != nil {
			return measurement{}, err
		}
	}
	start := time.Now()
	if err := f(); err != nil {
		return measurement{}, err
	}
	m := measurement{took: time.Since(start)}
	api1, etcd1, err := cpuTimes(cp)
	if err != nil {
		return measurement{}, err
	}
	m.apiCPU, m.etcd = api1-api0, etcd1-etcd0
	busy1, err := machineBusy()
	if err != nil {
		return measurement{}, err
	}
	m.machineBusy = busy1 - busy0
	if mgr != nil {
		mgr1, err := processCPU(mgr.PID())
		if err != nil {
			return measurement{}, err
		}
		m.managerCPU = mgr1 - mgr0
		time.Sleep(2 * time.Second) // let trailing events flush
		lim1, err := mgr.limiterWait()
		if err != nil {
			return measurement{}, err
		}
		w1, err := mgr.writes()
		if err != nil {
			return measurement{}, err
		}
		m.limiterWait, m.writesPerAcct = lim1-lim0, w1-w0
	}
	return m, nil
}

func median(ms []measurement) measurement {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measurement) int { return int(a.took - b.took) })
	return s[len(s)/2]
}

func spread(ms []measurement) string {
	if len(ms) < 2 {
		return ""
	}
	lo, hi := ms[0].took, ms[0].took
	for _, m := range ms {
		lo, hi = min(lo, m.took), max(hi, m.took)
	}
	return fmt.Sprintf(" (%.1f-%.1f)", lo.Seconds(), hi.Seconds())
}

func spreadRatio(ms []measurement, base time.Duration) string {
	if len(ms) < 2 {
		return ""
	}
	lo, hi := ms[0].took, ms[0].took
	for _, m := range ms {
		lo, hi = min(lo, m.took), max(hi, m.took)
	}
	return fmt.Sprintf(" (%.2f-%.2f)", lo.Seconds()/base.Seconds(), hi.Seconds()/base.Seconds())
}

// controlPlanePIDs finds the kube-apiserver and etcd this process started
// (envtest runs them as its children).
func controlPlanePIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 2)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := statFields(string(stat))
		if len(f) < 4 || f[3] != strconv.Itoa(os.Getpid()) {
			continue
		}
		switch strings.Trim(f[1], "()") {
		case "kube-apiserver":
			pids[0] = pid
		case "etcd":
			pids[1] = pid
		}
	}
	if pids[0] == 0 || pids[1] == 0 {
		return nil, fmt.Errorf("kube-apiserver or etcd not found among this process's children")
	}
	return pids, nil
}

// statFields splits /proc/<pid>/stat; the command (field 2) is in
// parentheses and may hold spaces.
func statFields(stat string) []string {
	i, j := strings.Index(stat, "("), strings.LastIndex(stat, ")")
	if i < 0 || j < i {
		return nil
	}
	return append([]string{strings.TrimSpace(stat[:i]), stat[i : j+1]}, strings.Fields(stat[j+1:])...)
}

// cpuTimes returns the user+system CPU time of kube-apiserver and etcd.
func cpuTimes(pids []int) (api, etcd time.Duration, err error) {
	if api, err = processCPU(pids[0]); err != nil {
		return 0, 0, err
	}
	etcd, err = processCPU(pids[1])
	return api, etcd, err
}

// processCPU returns a process's user+system CPU time.
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := statFields(string(stat))
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[13], 10, 64)
	stime, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100), nil // USER_HZ is 100 on Linux
}

// machineBusy returns the CPU time all cores spent not idle (/proc/stat).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * (time.Second / 100), nil
}

// parallel runs f(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func benchAccount(prefix string, i int) *gmsav1alpha1.GmsaAccount {
	name := fmt.Sprintf("%s-%d", prefix, i)
	a := &gmsav1alpha1.GmsaAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gmsav1alpha1.GmsaAccountSpec{
			CredentialSpec: gmsav1alpha1.CredentialSpecSource{
				AccountName: fmt.Sprintf("Svc%d", i%100000),
				Domain: &gmsav1alpha1.Domain{DNSName: "contoso.com", NetBiosName: "CONTOSO",
					GUID: "244818ae-87ac-4fcd-92ec-e79e5252348a", SID: "S-1-5-21-2126449477-2524075714-3094792973"},
			},
		},
	}
	for _, ns := range namespaces {
		a.Spec.ServiceAccounts = append(a.Spec.ServiceAccounts, gmsav1alpha1.ServiceAccountRef{Namespace: ns, Name: name})
	}
	return a
}

// baseline creates, with a plain client, the objects the operator would
// generate for n accounts (without owner references or labels the operator
// watches).
func baseline(ctx context.Context, c client.Client, prefix string, n, workers int) error {
	return parallel(n, workers, func(i int) error {
		a := benchAccount(prefix, i)
		cs, err := account.DesiredCredentialSpec(a)
		if err != nil {
			return err
		}
		cs.SetOwnerReferences(nil)
		cs.SetLabels(map[string]string{"bench": "baseline"})
		if err := c.Create(ctx, cs); err != nil {
			return err
		}
		cr := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: account.ClusterRoleName(a), Labels: map[string]string{"bench": "baseline"}},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"use"}, ResourceNames: []string{a.Name}}},
		}
		if err := c.Create(ctx, cr); err != nil {
			return err
		}
		for ns, subjects := range account.Subjects(a) {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: account.RoleBindingName(a), Namespace: ns, Labels: map[string]string{"bench": "baseline"}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
				Subjects:   subjects,
			}
			if err := c.Create(ctx, rb); err != nil {
				return err
			}
		}
		return nil
	})
}

// operator creates n GmsaAccounts and returns the time until all are Ready,
// as seen through a watch (polling lists would load the API server).
func operator(ctx context.Context, cfg *rest.Config, c client.Client, prefix string, n, workers int) error {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	w, err := wc.Watch(ctx, &gmsav1alpha1.GmsaAccountList{})
	if err != nil {
		return err
	}
	defer func() { w.Stop() }()

	created := make(chan error, 1)
	go func() {
		created <- parallel(n, workers, func(i int) error { return c.Create(ctx, benchAccount(prefix, i)) })
	}()
	ready := map[string]bool{}
	for len(ready) < n {
		select {
		case err := <-created:
			if err != nil {
				return err
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The API server may end a watch at any time; a new one
				// starts with the current state of every account.
				if w, err = wc.Watch(ctx, &gmsav1alpha1.GmsaAccountList{}); err != nil {
					return fmt.Errorf("watch again with %d of %d accounts Ready: %w", len(ready), n, err)
				}
				continue
			}
			a, isAccount := ev.Object.(*gmsav1alpha1.GmsaAccount)
			if isAccount && strings.HasPrefix(a.Name, prefix+"-") && meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady) {
				ready[a.Name] = true
			}
		}
	}
	return nil
}

// noise adds n Secrets, n RoleBindings and n Namespaces that the operator
// must ignore (it caches every Namespace, but only as trimmed metadata).
func noise(ctx context.Context, c client.Client, n, workers int) error {
	return parallel(n, workers, func(i int) error {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("noise-%d", i), Namespace: "noise"},
			Data:       map[string][]byte{"payload": make([]byte, 512)},
		}
		if err := c.Create(ctx, s); err != nil {
			return err
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("noise-%d", i), Namespace: "noise"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "noise", Name: fmt.Sprintf("sa-%d", i)}},
		}
		if err := c.Create(ctx, rb); err != nil {
			return err
		}
		// Namespaces as teams make them: labels and kubectl's
		// last-applied annotation.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("noise-%d", i),
			Labels:      map[string]string{"team": fmt.Sprintf("team-%d", i%50), "env": "prod"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 300)}}}
		return c.Create(ctx, ns)
	})
}

type managerProcess struct{ *harness.ManagerProcess }

func startManager(bin, kubeconfig string, args []string) (*managerProcess, error) {
	m, err := harness.StartManager(bin, kubeconfig, os.Stderr, append(slices.Clone(args), "--zap-log-level=error")...)
	if err != nil {
		return nil, err
	}
	return &managerProcess{m}, nil
}

// settle waits until a freshly started manager has gone through the
// accounts that already exist (its reconcile count stops growing), so that
// this does not count against the next run.
func (m *managerProcess) settle() error {
	last := -1.0
	for i := 0; i < 600; i++ {
		n, err := m.scrape("controller_runtime_reconcile_total", []string{`controller="gmsaaccount"`}, nil)
		if err == nil && n == last && i >= 2 {
			return nil
		}
		last = n
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("the manager did not settle")
}

// limiterWait is the total time, in seconds, the manager's requests waited
// on its client-side rate limiter.
func (m *managerProcess) limiterWait() (float64, error) {
	return m.scrape("rest_client_rate_limiter_duration_seconds_sum", nil, nil)
}

// scrape returns the sum of the samples of a metric whose labels contain
// all of the given fragments and none of the excluded ones.
func (m *managerProcess) scrape(name string, include, exclude []string) (float64, error) {
	resp, err := http.Get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name, include, exclude)
}

func sumMetric(r io.Reader, name string, include, exclude []string) (float64, error) {
	total := 0.0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, f := range include {
			if !strings.Contains(line, f) {
				continue next
			}
		}
		for _, f := range exclude {
			if strings.Contains(line, f) {
				continue next
			}
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, sc.Err()
}

// writes is the number of write requests (not GET) the manager made.
func (m *managerProcess) writes() (float64, error) {
	return m.scrape("rest_client_requests_total", nil, []string{`method="GET"`})
}

// memory returns the lowest heap-in-use and RSS of 5 readings 1 s apart.
func (m *managerProcess) memory() (heap, rss float64, err error) {
	for i := 0; i < 5; i++ {
		h, err := m.scrape("go_memstats_heap_inuse_bytes", nil, nil)
		if err != nil {
			return 0, 0, err
		}
		r, err := m.scrape("process_resident_memory_bytes", nil, nil)
		if err != nil {
			return 0, 0, err
		}
		if i == 0 || h < heap {
			heap = h
		}
		if i == 0 || r < rss {
			rss = r
		}
		time.Sleep(time.Second)
	}
	return heap, rss, nil
}
