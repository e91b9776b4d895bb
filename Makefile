# Learning from Massive Noisy Labeled Data (Xiao et al., CVPR 2015) on stock BVLC Caffe.
#
#   make demo                    the digits experiment end to end (sets everything up first)
#   make test                    the test suite, with the real Caffe
#   make caffe [CUDA=1] [CAFFE_SRC=dir]   build stock BVLC Caffe into ~/.cache/noisy-label-caffe
#   make venv                    .venv with pinned deps, pycaffe and the `caffe` launcher
#   make docker | docker-cpu     the CUDA / CPU image (docker/); DOCKER=podman|buildah,
#                                DOCKER_FLAGS='--build-arg BASE_IMAGE=...' pass through
#
# EXP=dir moves the experiment root (datasets, db, snapshots, logs); default exp/.

SHELL := /bin/bash
EXP ?= exp
DATASET ?= digits
export EXP

VENV := .venv
IN_VENV := source $(VENV)/bin/activate &&

.PHONY: help caffe venv test demo bench clean docker docker-cpu

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

caffe:
	@bash scripts/build_caffe.sh > /dev/null

venv: caffe
	@bash scripts/setup_venv.sh "$$(bash scripts/build_caffe.sh --prefix)"

test: venv
	$(IN_VENV) python -m pytest $(PYTEST_ARGS)

demo: venv
	$(IN_VENV) python -m noisy_label.smoke

clean:
	rm -rf $(VENV) .pytest_cache

DOCKER ?= docker
IMAGE ?= noisy-label

docker:
	$(DOCKER) build $(DOCKER_FLAGS) -f docker/Dockerfile -t $(IMAGE):cuda .

docker-cpu:
	$(DOCKER) build $(DOCKER_FLAGS) -f docker/Dockerfile.cpu -t $(IMAGE):cpu .
