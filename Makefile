# smc.backend: the two commands a newcomer needs are `make lab` and `make test`.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_FORCE_COLOR ?= 0
PLAYBOOK := ansible-playbook
SCENARIOS ?= default tinc zfs
LAB_VARS := $(if $(LAB_PORT_BASE),-e lab_ssh_port_base=$(LAB_PORT_BASE))

.PHONY: help deps image lab lab-up lab-fresh lab-checks lab-down lab-status site unit lint sanity molecule test bench build

help:
	@echo "make lab         install deps, build the image, boot the 6-VM lab, converge playbooks/site.yml"
	@echo "make test        unit tests, lint, sanity, and the molecule scenarios on the lab"
	@echo "make lab-status | lab-down | bench | build"

deps:
	@tests/lab/bootstrap.sh

image: deps
	@tests/lab/build-image.sh >/dev/null

lab-up: image
	$(PLAYBOOK) playbooks/lab_up.yml $(LAB_VARS)

lab: lab-up site

site: deps
	$(PLAYBOOK) playbooks/site.yml

lab-status: deps
	$(PLAYBOOK) playbooks/lab_status.yml

lab-down: deps
	$(PLAYBOOK) playbooks/lab_down.yml

unit: deps
	pytest -q -n 2 tests/unit

lint: deps
	ansible-lint --profile production

sanity: deps
	tests/sanity.sh

lab-checks: deps
	pytest -q -p no:cacheprovider tests/lab_checks

molecule: deps
	@for s in $(SCENARIOS); do echo "== molecule scenario $$s"; molecule test -s $$s || exit 1; done

# CI (CI=true) starts from a fresh lab: the VMs' disks are recreated, so every converge starts from nothing.
test: unit lint sanity $(if $(CI),lab-fresh,lab-up) lab-checks molecule

lab-fresh: image
	$(PLAYBOOK) playbooks/lab_down.yml
	$(PLAYBOOK) playbooks/lab_up.yml $(LAB_VARS)

bench: deps
	@for b in benchmarks/*.py; do echo "== $$b"; python $$b || exit 1; done

build: deps
	ansible-galaxy collection build --force --output-path build/
