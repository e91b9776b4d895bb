# Learning from Massive Noisy Labeled Data (Xiao et al., CVPR 2015) on stock BVLC Caffe.
#
#   make demo                    the digits experiment end to end (sets everything up first)
#   make test                    make lint, then the test suite with the real Caffe;
#                                PYTEST_ARGS='-m "not caffe"' runs the numpy tier alone
#   make caffe [CUDA=1] [CAFFE_SRC=dir]   build stock BVLC Caffe into ~/.cache/noisy-label-caffe
#   make venv                    .venv with pinned deps, pycaffe and the `caffe` launcher
#   make caffe-bundle [BUNDLE=dir]   the files a GPU node without network, root or Caffe's C++
#                                libraries needs (default build/caffe-bundle); there:
#                                make caffe CUDA=1 BUNDLE=dir PYTHON=... (README, CUDA builds)
#   make rehearse-node [BUNDLE=dir]  that node build here, without network or those packages
#   make lmdb DATASET=digits|cifar10|clothing1M   LMDBs, mean file, matrix C in $EXP/db/<dataset>
#                                (DATASET=<yours>: $EXP/datasets/<yours>/dataset.yaml, or DATA_ROOT=dir)
#   make train DATASET=digits|cifar10|clothing1M  the dataset's training stages (its stage table),
#                                resumable; SEED=n SET="max_iter=2000" STAGE=s KEEP_SNAPSHOTS=k
#   make relabel DATASET=...     corrected labels of the mixed set from the trained model
#                                (THRESHOLD=auto|<p>|precision:<p>; auto: F1 on held-out pairs)
#   make compare DATASET=...     every noise-robust method on the same data and seeds
#                                (SEEDS="1 2 3 4 5 6"): $EXP/logs/<dataset>/compare.md, .png, .json,
#                                95% intervals and paired differences
#   make bench                   the benchmarks in bench/ (ratios against the stock Caffe tools)
#   make bench-gpu               the GPU benchmarks (Clothing1M nets, cuDNN, MPI vs NCCL)
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

.PHONY: help caffe venv test demo train bench clean docker docker-cpu lmdb relabel compare

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

caffe:
	@bash scripts/build_caffe.sh > /dev/null

venv: caffe
	@bash scripts/setup_venv.sh "$$(bash scripts/build_caffe.sh --prefix)"

# The GPU node's bundle (scripts/caffe_bundle.sh) and its rehearsal here (scripts/rehearse_node.sh,
# root, minutes of CUDA compile: not part of make test).
.PHONY: caffe-bundle rehearse-node
caffe-bundle:
	@bash scripts/caffe_bundle.sh $(or $(BUNDLE),build/caffe-bundle)

rehearse-node:
	@bash scripts/rehearse_node.sh $(or $(BUNDLE),build/caffe-bundle)

test: venv lint
	$(IN_VENV) python -m pytest $(PYTEST_ARGS)

# ruff (pyflakes, pycodestyle, import order; settings in pyproject.toml)
.PHONY: lint
lint: venv
	@if [ -x $(VENV)/bin/ruff ]; then $(IN_VENV) ruff check python_layers tools tests bench; \
	else echo "lint: skipped: no ruff in $(VENV) (a venv over PYTHON=... installs only what" \
	     "pytest needs; pip install ruff==0.17.6 to lint there)"; fi

# make demo: make lmdb + make train for DATASET=digits at seeds $(DEMO_SEEDS), then the
# report $(EXP)/logs/digits/report.md and report.png (tools/demo.py).
DEMO_SEEDS ?= 1 2 3
demo: venv
	$(IN_VENV) python tools/demo.py --seeds $(DEMO_SEEDS)

# images/s of noisy_label.train on 1 and 2 MPI ranks beside stock caffe train (CPU)
.PHONY: bench-mpi
bench-mpi: venv
	$(IN_VENV) python bench/bench_mpi.py

bench: venv bench-mpi
	$(IN_VENV) python bench/bench_noisy_loss.py && python bench/bench_robust_losses.py && \
		python bench/bench_lmdb.py && python bench/bench_relabel.py

# On a GPU machine: the noisy-label loss in the Clothing1M joint net against two stock
# SoftmaxWithLoss, the other robust losses against SoftmaxWithLoss, images/s of each stage
# beside caffe time, the allreduce MPI vs NCCL.
.PHONY: bench-gpu
bench-gpu: venv
	$(IN_VENV) python bench/bench_noisy_loss.py --net clothing1M --gpu && \
		python bench/bench_robust_losses.py --gpu && python bench/bench_gpu.py

# make lmdb DATASET=cifar10|clothing1M|digits|<yours> [DATA_ROOT=dir] [SEED=n] [FORCE=1]
#   [ENCODED=1] [SKIP_BAD=1] [the dataset's options: NOISE_LEVEL=0.5 NUM_CLEAN=n JPEG_QUALITY=75
#   (cifar10, digits), RESIZE=256 UPSAMPLE=1.0 (clothing1M), UPSAMPLE (yours)]: LMDBs, mean, C in
#   $(EXP)/db/. <yours>: a folder with a dataset.yaml, in $(EXP)/datasets/<yours> or DATA_ROOT.
#   Every other NAME=value on the command line goes to tools/make_lmdb.py as a dataset option
#   (the dataset declares which it takes; one it does not take is an error, not ignored).
OWN_VARIABLES := DATASET EXP DATA_ROOT SEED SEEDS FORCE ENCODED SKIP_BAD SET STAGE KEEP_SNAPSHOTS \
	THRESHOLD PYTEST_ARGS DEMO_SEEDS BUNDLE CUDA PYTHON CAFFE_SRC DOCKER DOCKER_FLAGS IMAGE
DATASET_OPTIONS = $(foreach v,$(filter-out $(OWN_VARIABLES),$(.VARIABLES)),\
	$(if $(filter command line,$(origin $(v))),--option $(v)='$($(v))'))
lmdb: venv
	$(VENV)/bin/python tools/make_lmdb.py $(DATASET) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
		$(if $(SEED),--seed $(SEED)) $(if $(FORCE),--force) $(if $(ENCODED),--encoded) \
		$(if $(SKIP_BAD),--skip-bad) $(DATASET_OPTIONS)

# make train DATASET=cifar10|clothing1M|digits|<yours> [SEED=n] [STAGE=name] [SET="key=value ..."]
#   [KEEP_SNAPSHOTS=k] [DATA_ROOT=dir]: tools/run_stages.py (scripts/<dataset>/train.sh does the same); finished
#   stages are skipped, stopped ones
#   resumed, stale ones retrained. SEED=n (n > 1) trains in $(EXP)/seeds/n, as make lmdb SEED=n.
train: venv
	$(VENV)/bin/python tools/run_stages.py $(DATASET) $(if $(SEED),--seed $(SEED)) $(if $(STAGE),--stage $(STAGE)) \
		$(if $(SET),--set "$(SET)") $(if $(KEEP_SNAPSHOTS),--keep-snapshots $(KEEP_SNAPSHOTS)) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT))

# make relabel DATASET=... [THRESHOLD=auto|<p>|precision:<p>] [SEED=n] [SET=...]: after make
#   train, the corrected labels of the mixed set and LMDBs of the cleaned set in
#   $(EXP)/db/<dataset>/relabel/. The flag threshold: auto (default) the best F1 on the held-out
#   clean/noisy pairs no net trained on, precision:<p> the largest there with precision >= p,
#   or the number given.
relabel: venv
	$(VENV)/bin/python tools/relabel.py $(DATASET) $(if $(SEED),--seed $(SEED)) \
		$(if $(SET),--set "$(SET)") $(if $(THRESHOLD),--threshold $(THRESHOLD)) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT))

# make compare DATASET=... [SEEDS="1 2 3 4 5 6"] [SET=...] [KEEP_SNAPSHOTS=k] [DATA_ROOT=dir]: make
#   train's stages and the other noise-robust losses (bootstrapping, forward / backward
#   correction) at each seed (make lmdb's defaults from DATA_ROOT for a seed not built yet),
#   then the table, plot and JSON in $(EXP)/logs/<dataset>/; finished stages are reused
compare: venv
	$(VENV)/bin/python tools/compare.py $(DATASET) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
		$(if $(SET),--set "$(SET)") $(if $(KEEP_SNAPSHOTS),--keep-snapshots $(KEEP_SNAPSHOTS))

clean:
	rm -rf $(VENV) .pytest_cache

DOCKER ?= docker
IMAGE ?= noisy-label

docker:
	$(DOCKER) build $(DOCKER_FLAGS) -f docker/Dockerfile -t $(IMAGE):cuda .

docker-cpu:
	$(DOCKER) build $(DOCKER_FLAGS) -f docker/Dockerfile.cpu -t $(IMAGE):cpu .
