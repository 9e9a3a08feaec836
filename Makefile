# kvroute's deploy targets (`make assets` / `make tekton`). deploy/README.md
# explains them.
#   make assets NS=llm-d [ENGINES=sim|vllm] [IMAGE=registry/kvroute:tag]
#   make tekton NS=llm-d [RUN=cache-ramp|cache-hit|cache-pod-restart]
#   make monitoring NS=llm-d        the PodMonitor, ServiceMonitor, alerts and dashboard
#   make check-deploy               offline validation of deploy/kubernetes (no cluster)
#   make image [IMAGE=...]          build the container image (Containerfile)

NS ?= llm-d
# sim: GPU-free `kvroute sim` engines; vllm: the reference vLLM engines on GPUs (block size 16, prefix caching).
ENGINES ?= sim
# Empty keeps the image the manifests name (ghcr.io/kvroute/kvroute:0.1.0).
IMAGE ?=
RUN ?= cache-ramp
KUBECTL ?= kubectl
CONTAINER ?= docker
export KUBECTL

RENDER = deploy/kubernetes/render.sh
# A failed render must fail the target, not apply nothing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

.PHONY: help assets tekton monitoring check-deploy image namespace

help:
	@sed -n '1,7p' Makefile

namespace:
	$(KUBECTL) create namespace $(NS) --dry-run=client -o yaml | $(KUBECTL) apply -f -

# The picker, the engines, the Gateway with its HTTPRoute and InferencePool, the EnvoyFilter
# and the DestinationRule. Needs Istio (with Gateway API support) and the Gateway API and
# InferencePool CRDs in the cluster.
assets: namespace
	$(RENDER) overlays/$(ENGINES) $(NS) $(IMAGE) | $(KUBECTL) apply -f -

# The Tasks, Pipelines and their RBAC, then one run (PipelineRuns use generateName, so each
# `make tekton` starts a new one). Needs Tekton Pipelines.
tekton: namespace
	$(RENDER) tekton $(NS) $(IMAGE) | $(KUBECTL) apply -f -
	$(KUBECTL) create --namespace $(NS) -f deploy/kubernetes/tekton/runs/$(RUN)-pipelinerun.yaml

# Needs the Prometheus Operator's CRDs.
monitoring: namespace
	$(RENDER) monitoring $(NS) | $(KUBECTL) apply -f -

check-deploy:
	scripts/check-deploy.sh

image:
	$(CONTAINER) build -f Containerfile -t $(or $(IMAGE),ghcr.io/kvroute/kvroute:0.1.0) .
