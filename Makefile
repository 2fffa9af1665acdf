# smc.backend: the two commands a newcomer needs are `make lab` and `make test`.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_FORCE_COLOR ?= 0
export SMC_LAB_CACHE ?= $(HOME)/.cache/smc-lab
# The lab's SSH masters live in a directory of their own: tests/lab/snapshot.py closes them around a revert.
export ANSIBLE_SSH_CONTROL_PATH_DIR ?= $(SMC_LAB_CACHE)/ssh-cp
# Mitogen for Ansible runs modules in a persistent interpreter per host instead of a new Python per task (the
# slowest part of a task on a TCG guest). SMC_MITOGEN=0 (or ANSIBLE_STRATEGY=linear) turns it off.
SMC_MITOGEN ?= 1
ifeq ($(SMC_MITOGEN),1)
export ANSIBLE_STRATEGY_PLUGINS ?= $(CURDIR)/.venv/mitogen-plugins/strategy
export ANSIBLE_STRATEGY ?= mitogen_linear
endif
# Per-task wall times: set SMC_TASK_TIMES=/path/records.jsonl and summarize with tests/lab/task_times.py.
export ANSIBLE_CALLBACK_PLUGINS ?= $(CURDIR)/tests/lab/callback_plugins
export ANSIBLE_CALLBACKS_ENABLED ?= smc_task_times
PLAYBOOK := ansible-playbook
# In priority order: default converges the lab the others start from; under make test's budget a scenario
# whose forecast (its stated CI minutes times this machine's measured speed) does not fit is listed, not run.
SCENARIOS ?= default replication limits monitoring coordination zfs tinc chaos chaos_operator
ifndef SMC_TEST_START
SMC_TEST_START := $(shell date +%s)
endif
export SMC_TEST_START
LAB_VARS := $(if $(LAB_PORT_BASE),-e lab_ssh_port_base=$(LAB_PORT_BASE))
SNAPSHOT := python tests/lab/snapshot.py

.PHONY: help deps image lab lab-up lab-fresh lab-checks lab-down lab-status lab-reset lab-save bench-lab site unit lint sanity molecule test bench build

help:
	@echo "make lab         install deps, build the image, boot the 6-VM lab, converge playbooks/site.yml"
	@echo "make test        unit tests, lint, sanity, and the molecule scenarios on the lab"
	@echo "make lab-reset   restore the converged lab (all VMs, memory and disks) in seconds"
	@echo "make lab-status | lab-down | bench | build"

deps:
	@tests/lab/bootstrap.sh

image: deps
	@tests/lab/build-image.sh >/dev/null

lab-up: image
	$(PLAYBOOK) tests/lab/lab_up.yml $(LAB_VARS)

# Converge, then keep the converged lab as snapshot 'converged' (make lab-reset and the scenarios restore it).
lab: lab-up site lab-save

site: deps
	$(PLAYBOOK) playbooks/site.yml

lab-save: deps
	$(SNAPSHOT) save converged

lab-reset: deps
	$(SNAPSHOT) restore converged

lab-status: deps
	$(PLAYBOOK) tests/lab/lab_status.yml

lab-down: deps
	$(PLAYBOOK) tests/lab/lab_down.yml

unit: deps
	pytest -q -n 2 tests/unit

lint: deps
	ansible-lint --profile production

sanity: deps
	tests/sanity.sh

lab-checks: deps
	pytest -q -p no:cacheprovider tests/lab_checks

molecule: deps
	python tests/lab/run_scenarios.py $(SCENARIOS)

# Scenario default converges from the lab's 'blank' snapshot and saves 'converged'; the others start from
# 'converged' and restore it when they end. CI (CI=true) also boots the VMs anew from fresh disks.
# CI stops at 90 minutes: make test runs scenarios within 78 from its start (SMC_TEST_BUDGET_MIN= runs them all).
test: export SMC_TEST_BUDGET_MIN ?= 78
test: unit lint sanity $(if $(CI),lab-fresh,lab-up) lab-checks molecule

lab-fresh: image
	$(PLAYBOOK) tests/lab/lab_down.yml
	$(PLAYBOOK) tests/lab/lab_up.yml $(LAB_VARS)

bench: deps
	@for b in benchmarks/*.py; do echo "== $$b"; python $$b || exit 1; done

# The lab's own figures (converge, idempotent re-run against Ansible's linear strategy, reset).
bench-lab: deps
	python benchmarks/lab.py

build: deps
	ansible-galaxy collection build --force --output-path build/
