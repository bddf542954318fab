# Images of images/Dockerfile. Included by the top-level Makefile (`-include images/image.mk`).
#
#   make image                 GPU image (KubeRay head/workers and every Job): cifar100-k8s:<version>,
#                              for linux/amd64 wherever it is built (PLATFORM)
#   make image-cpu             CPU variant for kind: cifar100-k8s:<version>-cpu, for this machine (CPU_PLATFORM)
#   make image-constraints     pin images/constraints.txt to the dev venv's versions
#   make image-test            build images/Dockerfile with buildah on a stand-in Ray base and run the
#                              CLI in it as uid 1000 (root; 5-15 min, ~32 GiB of scratch; DEVELOPERS.md)

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_REPO ?= cifar100-k8s
IMAGE_TAG ?= $(VERSION)
RAY_VERSION ?= 2.60.0
# Both variants start from Ray's CPU image: the GPU image's CUDA (13.0, driver R580+) is the one its
# torch wheels bundle, and a -cuXXX base would add a second one (images/Dockerfile says more).
CPU_BASE ?= rayproject/ray:$(RAY_VERSION)-py311-cpu
CUDA_BASE ?= $(CPU_BASE)
# Empty: PyPI's default torch 2.14.1 wheels (CUDA 13.0), as pinned in images/constraints.txt.
CUDA_TORCH_INDEX ?=
CPU_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# 0 skips baking pytorch-fid's Inception weights into the image (no network at build time).
FID_WEIGHTS ?= 1
DOCKER ?= docker
# The cloud's nodes are amd64 (GKE g2, EKS g6/g5, AKS NC-series GPUs; the CPU machines of
# docs/kubernetes.md), so `make image` builds linux/amd64 wherever it runs: on an arm laptop (Apple
# silicon) through Docker's emulation, instead of an arm64 image the nodes cannot run ("exec format
# error"). kind runs the CPU image on this machine: empty CPU_PLATFORM builds for this machine's
# own (on arm64 with CPU_BASE=$(CPU_BASE)-aarch64, Ray's arm64 image; docs/kubernetes.md "The image").
PLATFORM ?= linux/amd64
CPU_PLATFORM ?=

# image-test: scratch space (vfs storage), the stand-in base's cache ("" = none), and a local index
# of the torch wheels to read instead of PyPI when this machine has one.
IMAGE_TEST_TMPDIR ?= /var/tmp
IMAGE_TEST_CACHE ?= build/image-test
IMAGE_TEST_WHEEL_MIRROR ?= $(wildcard /opt/pypi-more/simple)
IMAGE_TEST_FID_WEIGHTS ?= 0

IMAGE_BUILD_ARGS = \
	--build-arg VERSION=$(VERSION) \
	--build-arg REVISION=$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	--build-arg CREATED=$(shell date -u +%Y-%m-%dT%H:%M:%SZ) \
	--build-arg SOURCE=$(shell git remote get-url origin 2>/dev/null) \
	--build-arg FETCH_FID_WEIGHTS=$(FID_WEIGHTS)

.PHONY: image-constraints image image-cpu image-test

# The exact versions the test suite ran with become the image's pip constraints.
image-constraints: setup
	{ sed -n '1,3p' images/constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^#'; } > images/constraints.txt.new
	mv images/constraints.txt.new images/constraints.txt

image:
	$(DOCKER) build --platform $(PLATFORM) -f images/Dockerfile $(IMAGE_BUILD_ARGS) \
		--build-arg BASE_IMAGE=$(CUDA_BASE) --build-arg TORCH_INDEX_URL=$(CUDA_TORCH_INDEX) \
		-t $(IMAGE_REPO):$(IMAGE_TAG) .

image-cpu:
	$(DOCKER) build $(if $(CPU_PLATFORM),--platform $(CPU_PLATFORM)) -f images/Dockerfile $(IMAGE_BUILD_ARGS) \
		--build-arg BASE_IMAGE=$(CPU_BASE) --build-arg TORCH_INDEX_URL=$(CPU_TORCH_INDEX) \
		-t $(IMAGE_REPO):$(IMAGE_TAG)-cpu .

image-test:
	RAY_VERSION=$(RAY_VERSION) IMAGE_TEST_TMPDIR=$(IMAGE_TEST_TMPDIR) IMAGE_TEST_CACHE=$(IMAGE_TEST_CACHE) \
	IMAGE_TEST_WHEEL_MIRROR=$(IMAGE_TEST_WHEEL_MIRROR) IMAGE_TEST_FID_WEIGHTS=$(IMAGE_TEST_FID_WEIGHTS) \
		images/test/image-test.sh
