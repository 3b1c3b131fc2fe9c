# gmsa-operator. `make demo` and `make test` do everything on a fresh machine;
# `make help` lists the other targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

export GOTOOLCHAIN := local

KUBE_VERSION ?= 1.37.1
ETCD_VERSION ?= 3.7.3
CONTROLLER_GEN_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

GOOS := $(shell go env GOOS)
GOARCH := $(shell go env GOARCH)
# envtest finds kube-apiserver, etcd and kubectl here; the harness finds
# kube-controller-manager beside them.
export KUBEBUILDER_ASSETS := $(CURDIR)/bin/k8s/$(KUBE_VERSION)-$(GOOS)-$(GOARCH)

CONTROLLER_GEN := $(CURDIR)/bin/tools/controller-gen-$(CONTROLLER_GEN_VERSION)
# test/install finds helm here.
export HELM := $(CURDIR)/bin/tools/helm-$(HELM_VERSION)
GO_TEST_FLAGS ?= -count=1 -timeout=45m
FUZZ_TIME ?= 15s
LDFLAGS := -s -w -X main.version=$(VERSION)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ The two commands

.PHONY: demo
demo: control-plane build ## Run the operator on a local control plane it starts itself (KEEP=1 keeps it up).
	go run ./test/demo -manager bin/manager $(if $(KEEP),-keep)

.PHONY: test
test: control-plane helm verify-generated fmt-check vet ## Vet, check generated files, run unit and envtest suites, evaluate the alert rules, fuzz the webhook briefly.
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) test-alerts
	go test ./internal/webhook -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZ_TIME)

# test/alerts is a Go module of its own: it needs Prometheus's rules and
# PromQL packages, which the operator's go.mod must not carry.
.PHONY: test-alerts
test-alerts: control-plane ## Evaluate config/prometheus's alert rules against a running manager and webhook (test/alerts).
	cd test/alerts && go vet ./... && go test $(GO_TEST_FLAGS) ./...

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs and the operator's RBAC from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: chart
chart: ## Copy the CRDs and the manager's RBAC rules from config/ into charts/gmsa-operator.
	go run ./hack/chartgen

BUNDLE_VERSION ?= 0.1.0

.PHONY: bundle
bundle: control-plane ## Generate the OLM bundle (bundle/, bundle.Dockerfile) from config/.
	go run ./hack/bundlegen -kubectl $(KUBEBUILDER_ASSETS)/kubectl -version $(BUNDLE_VERSION)

.PHONY: verify-generated
verify-generated: manifests generate chart bundle ## Fail when generated files differ from what is committed.
	@changed="$$(git status --porcelain -- api config bundle bundle.Dockerfile charts)"; \
	if [[ -n "$$changed" ]]; then \
		echo "Generated files are stale; run 'make manifests generate' and commit:"; echo "$$changed"; \
		git --no-pager diff --stat -- api config bundle bundle.Dockerfile charts; exit 1; \
	fi

.PHONY: fmt
fmt: ## Format the Go code.
	go fmt ./...

.PHONY: fmt-check
fmt-check: ## Fail when Go code is not gofmt-formatted.
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [[ -n "$$unformatted" ]]; then echo "Not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: build
build: ## Build the manager, webhook and kubectl-gmsa binaries into bin/.
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/webhook ./cmd/webhook
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-gmsa ./cmd/kubectl-gmsa

ARCHS ?= amd64 arm64
# The kubectl-gmsa plugin runs where kubectl runs (hack/krew/gmsa.yaml lists the same platforms).
PLUGIN_TARGETS ?= $(addprefix linux/,$(ARCHS)) darwin/amd64 darwin/arm64 windows/amd64

.PHONY: build-cross
build-cross: ## Build the manager and webhook for linux/amd64 and linux/arm64 into bin/linux-<arch>/ (what the image holds, Dockerfile), and the kubectl-gmsa plugin for Linux, macOS and Windows into bin/<os>-<arch>/.
	for arch in $(ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-$$arch/manager ./cmd/manager; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-$$arch/webhook ./cmd/webhook; \
	done
	for target in $(PLUGIN_TARGETS); do \
		os=$${target%/*}; arch=$${target#*/}; ext=; [[ $$os == windows ]] && ext=.exe; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$os-$$arch/kubectl-gmsa$$ext ./cmd/kubectl-gmsa; \
	done

.PHONY: run
run: ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

##@ End to end (a real one-node cluster on this machine; needs root)

export E2E_DIR ?= /tmp/gmsa-e2e

.PHONY: e2e
e2e: helm ## Build what is missing, start a one-node cluster, run test/e2e on it, take it down (logs in $(E2E_DIR)/logs).
	./hack/e2e/run.sh

.PHONY: e2e-up
e2e-up: ## Start the one-node cluster and keep it (KUBECONFIG=$(E2E_DIR)/admin.kubeconfig).
	./hack/e2e/build.sh
	./hack/e2e/up.sh

.PHONY: e2e-down
e2e-down: ## Stop the one-node cluster and undo every change it made to the machine.
	./hack/e2e/down.sh

##@ Tools (built from the Go module proxy into bin/, once per version)

.PHONY: control-plane
control-plane: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd for the tests.
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) ./hack/build-control-plane.sh

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen.
$(CONTROLLER_GEN):
	./hack/install-tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_GEN_VERSION) >/dev/null

.PHONY: helm
helm: $(HELM) ## Install helm (test/install lints and renders the chart with it).
$(HELM):
	./hack/install-tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION) >/dev/null

.PHONY: clean
clean: ## Remove built binaries (keeps the cached control plane and tools).
	rm -f bin/manager bin/webhook bin/kubectl-gmsa

##@ Benchmarks (not part of make test; each writes its section of docs/benchmarks.md)

.PHONY: bench-accounts
bench-accounts: control-plane build ## GmsaAccount convergence against a plain-client baseline, and manager memory.
	go run ./test/benchmark/accounts -manager bin/manager -out docs/benchmarks.md $(BENCH_ACCOUNTS_FLAGS)

.PHONY: bench-webhook
bench-webhook: control-plane ## Admission latency and throughput against a baseline handler; writes docs/benchmarks.md.
	go run ./test/benchmark/webhook -out docs/benchmarks.md $(BENCH_WEBHOOK_FLAGS)

.PHONY: bench-admission
bench-admission: control-plane ## Pod creation through the API server: no gMSA admission, Webhook mode, Policy mode; the webhook under a burst (as root).
	go run ./test/benchmark/admission -out docs/benchmarks.md $(BENCH_ADMISSION_FLAGS)
