// Command accounts measures how fast the operator converges N GmsaAccounts
// (each granting 3 service accounts in 3 namespaces), against a baseline
// that creates the same objects (credspec, ClusterRole, 3 RoleBindings)
// directly with a plain client at the same concurrency and request rate,
// in the same run on the same local control plane. It then measures the
// manager's memory before and after 10,000 unrelated Secrets and 10,000
// unrelated RoleBindings are added to the cluster.
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
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/account"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
	"github.com/gmsa-operator/gmsa-operator/test/benchmark/report"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var namespaces = []string{"bench-a", "bench-b", "bench-c"}

func main() {
	sizes := flag.String("sizes", "100,1000,3000", "comma-separated numbers of GmsaAccounts")
	concurrency := flag.Int("concurrency", 8, "parallel workers of the baseline and of the operator's reconciler")
	qps := flag.Int("qps", 200, "request rate limit of the baseline client and of the manager")
	unrelated := flag.Int("unrelated", 10000, "unrelated Secrets and RoleBindings (each) added before the second memory reading")
	managerBin := flag.String("manager", "bin/manager", "manager binary")
	out := flag.String("out", "", "also write the report into this Markdown file's accounts section (docs/benchmarks.md)")
	flag.Parse()
	if err := run(*sizes, *concurrency, *qps, *unrelated, *managerBin, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark failed:", err)
		os.Exit(1)
	}
}

func run(sizesFlag string, concurrency, qps, unrelated int, managerBin, out string) error {
	var sizes []int
	for _, s := range strings.Split(sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	env, err := harness.Start(harness.Options{NoControllerManager: true, ServiceCIDR: "127.0.103.0/24"})
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = float32(qps), 2*qps
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
	mgr, err := startManager(filepath.Join(root, managerBin), env.Kubeconfig, concurrency, qps)
	if err != nil {
		return err
	}
	defer mgr.Stop()

	var w strings.Builder
	printf := func(format string, args ...any) { fmt.Fprintf(&w, format, args...); fmt.Printf(format, args...) }
	printf("## GmsaAccount convergence\n\n")
	printf("Command: `make bench-accounts` (`go run ./test/benchmark/accounts -out docs/benchmarks.md`)  \n")
	printf("Measured: %s, %s/%s, %d CPUs, %s.\n\n", time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	printf("Each GmsaAccount grants 3 service accounts in 3 namespaces. Baseline: a plain client creates the same objects (1 credspec, 1 ClusterRole, 3 RoleBindings per account) directly. Both at %d workers and %d requests/s (burst %d), on one local kube-apiserver + etcd, 2 cores.\n\n", concurrency, qps, 2*qps)
	printf("| accounts | baseline | operator (all Ready) | ratio | operator writes per account |\n")
	printf("|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		base, err := baseline(ctx, c, n, concurrency)
		if err != nil {
			return err
		}
		writesBefore, err := mgr.writes()
		if err != nil {
			return err
		}
		op, err := operator(ctx, cfg, c, n, concurrency)
		if err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // let trailing events flush
		writesAfter, err := mgr.writes()
		if err != nil {
			return err
		}
		printf("| %d | %.1fs | %.1fs | %.2f | %.1f |\n", n, base.Seconds(), op.Seconds(), op.Seconds()/base.Seconds(), (writesAfter-writesBefore)/float64(n))
	}

	heap0, rss0, err := mgr.memory()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := noise(ctx, c, unrelated, concurrency); err != nil {
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
	printf("After convergence of all accounts above; then %d Secrets and %d RoleBindings without the operator's labels were added (%.0fs). Lowest of 5 readings, 1 s apart.\n\n", unrelated, unrelated, noiseTime.Seconds())
	printf("| reading | heap in use | RSS |\n")
	printf("|---|---:|---:|\n")
	printf("| before | %.1f MiB | %.1f MiB |\n", mib(heap0), mib(rss0))
	printf("| after %d unrelated objects | %.1f MiB | %.1f MiB |\n", 2*unrelated, mib(heap1), mib(rss1))
	printf("| ratio | %.2f | %.2f |\n", heap1/heap0, rss1/rss0)
	if out != "" {
		return report.WriteSection(out, "accounts-benchmark", w.String())
	}
	return nil
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
// watches), and returns how long that took.
func baseline(ctx context.Context, c client.Client, n, workers int) (time.Duration, error) {
	prefix := fmt.Sprintf("base%d", n)
	start := time.Now()
	err := parallel(n, workers, func(i int) error {
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
	return time.Since(start), err
}

// operator creates n GmsaAccounts and returns the time until all are Ready,
// as seen through a watch (polling lists would load the API server).
func operator(ctx context.Context, cfg *rest.Config, c client.Client, n, workers int) (time.Duration, error) {
	prefix := fmt.Sprintf("acct%d", n)
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	w, err := wc.Watch(ctx, &gmsav1alpha1.GmsaAccountList{})
	if err != nil {
		return 0, err
	}
	defer func() { w.Stop() }()

	start := time.Now()
	created := make(chan error, 1)
	go func() {
		created <- parallel(n, workers, func(i int) error { return c.Create(ctx, benchAccount(prefix, i)) })
	}()
	ready := map[string]bool{}
	for len(ready) < n {
		select {
		case err := <-created:
			if err != nil {
				return 0, err
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The API server may end a watch at any time; a new one
				// starts with the current state of every account.
				if w, err = wc.Watch(ctx, &gmsav1alpha1.GmsaAccountList{}); err != nil {
					return 0, fmt.Errorf("watch again with %d of %d accounts Ready: %w", len(ready), n, err)
				}
				continue
			}
			a, isAccount := ev.Object.(*gmsav1alpha1.GmsaAccount)
			if isAccount && strings.HasPrefix(a.Name, prefix+"-") && meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady) {
				ready[a.Name] = true
			}
		}
	}
	return time.Since(start), nil
}

// noise adds n Secrets and n RoleBindings that the operator must ignore.
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
		return c.Create(ctx, rb)
	})
}

type managerProcess struct{ *harness.ManagerProcess }

func startManager(bin, kubeconfig string, workers, qps int) (*managerProcess, error) {
	m, err := harness.StartManager(bin, kubeconfig, os.Stderr,
		"--max-concurrent-reconciles="+strconv.Itoa(workers), "--kube-api-qps="+strconv.Itoa(qps), "--kube-api-burst="+strconv.Itoa(2*qps),
		"--zap-log-level=error")
	if err != nil {
		return nil, err
	}
	return &managerProcess{m}, nil
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
