# infralab — run `make help`. Works as root; in the course VM prefix with sudo.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.infralab-installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help install demo test unit scenarios chaos lab-pictures bench lint clean vm vm-smoke vm-cluster-smoke

help: ## show this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install apt packages, the .venv and start Open vSwitch (skipped when done)
	@bash scripts/install.sh

demo: install ## build the reference "world" topology and show everything working
	$(SUDO) $(VENV)/bin/infralab demo world

WORKERS ?= 1
test: install ## the whole suite, one test at a time (WORKERS=auto or N: parallel workers, then the serial tests)
	$(SUDO) bash scripts/test.sh $(WORKERS)

unit: ## unit tests only: pure logic, no root, no network
	@[ -x $(PY) ] || bash scripts/install.sh
	$(PY) -m pytest -q tests/unit

scenarios: install ## scenario tests only (root, live emulated network)
	$(SUDO) $(PY) -m pytest -q tests/scenarios

lab-pictures: install ## the handouts' pictures made again from live captures (labs/*.svg)
	$(SUDO) $(PY) -m infralab.labpictures

chaos: install ## the longer chaos run (FAULT-INJECT): CHAOS_WINDOW s of faults (default 300), CHAOS_SEED; timeline and picture in bench/out/
	$(SUDO) INFRALAB_CHAOS_WINDOW=$(or $(CHAOS_WINDOW),300) INFRALAB_CHAOS_SEED=$(CHAOS_SEED) \
		INFRALAB_CHAOS_OUT=bench/out $(PY) -m pytest -q -s tests/scenarios/test_chaos.py

bench: install ## benchmarks against real peers in the same run; writes bench/out/
	$(SUDO) $(PY) -m bench

lint: ## ruff and the mypy type checker over the tree
	@[ -x $(VENV)/bin/mypy ] || bash scripts/install.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean: ## remove what crashed runs left behind (infralab's own bridges/processes only)
	@if [ -x $(VENV)/bin/infralab ]; then $(SUDO) $(VENV)/bin/infralab clean; fi

vm: ## build the course VM image in vm/out/ (debootstrap + scripts/install.sh; needs debootstrap)
	$(SUDO) bash vm/build.sh

vm-smoke: ## boot vm/out/infralab.img under QEMU and check infralab runs inside (SMOKE=demo: make demo; SMOKE=lab: the NAT lab; SMOKE=labs: every lab; SMOKE=kernel: kernel datapath + netem; TREE=1: this checkout's code)
	$(SUDO) SMOKE=$(or $(SMOKE),check) TREE=$(TREE) SMOKE_ENV="$(SMOKE_ENV)" bash vm/smoke.sh

vm-cluster-smoke: ## boot two guests of vm/out/infralab.img on a private network and run duo split over both (SCALE-CLUSTER)
	$(SUDO) bash vm/cluster-smoke.sh
