# kind and Helm. Included by the top-level Makefile (`-include k8s/k8s.mk`), after images/image.mk,
# which defines the image targets and IMAGE_REPO, IMAGE_TAG and VERSION.
#
#   make kind-up               one-node kind cluster with ./data and ./results mounted, plus their PVCs
#   make kind-load             build image-cpu and load it into the kind node
#   make kuberay-install       KubeRay operator 1.7.0: its CRDs first (server-side apply), then the operator
#   make helm-install          install the chart: STORAGE_CLASS=<a ReadWriteMany class> (HELM_ARGS="-f my-values.yaml ...")
#   make helm-install-kind     install the chart with k8s/kind/values.yaml

KIND ?= kind
KUBECTL ?= kubectl
HELM ?= helm
KIND_CLUSTER ?= cifar100
KUBERAY_VERSION ?= 1.7.0
# Seconds KubeRay keeps a RayJob whose Ray dashboard does not answer (its head pod lost, rescheduled
# and pulling the image) before it fails it for good: its reason, JobStatusCheckTimeoutExceeded, is one
# KubeRay never retries. Its default, 300 s, is shorter than a new node and an image pull.
KUBERAY_STATUS_CHECK_TIMEOUT ?= 1800
RELEASE ?= cifar100
NAMESPACE ?= default
HELM_ARGS ?=
# The ReadWriteMany storage class of the two volumes (the chart refuses to install without one, or
# without existing claims in HELM_ARGS).
STORAGE_CLASS ?=

.PHONY: kind-up kind-down kind-load kuberay-install helm-install helm-install-kind

# The pods run as uid 1000; hostPath volumes ignore fsGroup, so the two folders are made writable.
kind-up:
	mkdir -p data results build
	chmod a+rwx data results
	sed 's|@REPO@|$(CURDIR)|g' k8s/kind/cluster.yaml > build/kind-cluster.yaml
	$(KIND) create cluster --name $(KIND_CLUSTER) --config build/kind-cluster.yaml
	$(KUBECTL) apply -f k8s/kind/storage.yaml

kind-down:
	$(KIND) delete cluster --name $(KIND_CLUSTER)

kind-load: image-cpu
	$(KIND) load docker-image $(IMAGE_REPO):$(IMAGE_TAG)-cpu --name $(KIND_CLUSTER)

# `helm upgrade --install` never installs a newer chart's CRDs over older ones (an old RayJob CRD
# silently drops fields such as preRunningDeadlineSeconds and authOptions), so the CRDs of that exact
# chart version are applied first, server-side (too big for a client-side apply's annotation;
# --force-conflicts takes over fields an earlier helm install owned).
kuberay-install:
	$(HELM) repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update
	rm -rf build/kuberay-operator
	$(HELM) pull kuberay/kuberay-operator --version $(KUBERAY_VERSION) --untar --untardir build
	$(KUBECTL) apply --server-side --force-conflicts -f build/kuberay-operator/crds/
	$(HELM) upgrade --install kuberay-operator kuberay/kuberay-operator --version $(KUBERAY_VERSION) \
		--namespace kuberay-system --create-namespace --skip-crds --wait \
		--set 'env[0].name=RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS' --set-string 'env[0].value=$(KUBERAY_STATUS_CHECK_TIMEOUT)'

helm-install:
	$(HELM) upgrade --install $(RELEASE) charts/cifar100 --namespace $(NAMESPACE) --create-namespace \
		--set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) \
		$(if $(STORAGE_CLASS),--set storage.data.storageClass=$(STORAGE_CLASS) --set storage.results.storageClass=$(STORAGE_CLASS)) \
		$(HELM_ARGS)

helm-install-kind:
	$(HELM) upgrade --install $(RELEASE) charts/cifar100 --namespace $(NAMESPACE) --create-namespace \
		-f k8s/kind/values.yaml --set image.tag=$(IMAGE_TAG)-cpu $(HELM_ARGS)
