# Off-road perception stack: one entry point for setup, build, tests, demo and benchmarks.
# Every recipe runs in bash with scripts/ros_env.sh sourced (venv + ROS 2 Jazzy + install/).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
ROS_ENV := source scripts/ros_env.sh
BUILD_STAMP := install/.offroad-build-stamp
# Files whose change needs a colcon rebuild (Python sources are symlink-installed).
ROS_PACKAGES := offroad_seg_msgs offroad_seg_node offroad_costmap offroad_replay launch
BUILD_INPUTS := $(wildcard colcon.meta offroad_seg_msgs/package.xml offroad_seg_msgs/CMakeLists.txt \
	offroad_seg_msgs/msg/*.msg $(foreach p,offroad_seg_node offroad_costmap offroad_replay,\
	$(p)/package.xml $(p)/setup.py $(p)/setup.cfg $(p)/config/*) \
	launch/package.xml launch/CMakeLists.txt launch/*.py launch/config/* launch/rviz/*)
PYTEST_PATHS := $(wildcard offroad_core/tests offroad_training/tests offroad_seg_node/test \
	offroad_costmap/test offroad_replay/test tests)

.PHONY: help setup build test test-fast lint format demo bench clean constraints

help:
	@echo "make demo    run the whole chain on the synthetic world and write a report"
	@echo "make test    set up if needed, build, run every package's tests, then ruff"
	@echo "make setup   create .venv, install ROS 2 Jazzy + dependencies, colcon build"
	@echo "make bench   run every benchmark under bench/ (prints figures)"
	@echo "make lint    ruff check"

setup: $(BUILD_STAMP)

# Always asks the setup script: it returns at once when nothing changed, and rewrites the stamp
# (so install/ is rebuilt) when it installed something.
$(VENV)/.offroad-setup-stamp: FORCE
	@bash scripts/setup_workspace.sh

$(BUILD_STAMP): $(BUILD_INPUTS) $(VENV)/.offroad-setup-stamp
	@$(ROS_ENV); colcon build --symlink-install --event-handlers console_cohesion- \
		--base-paths $(ROS_PACKAGES)
	@touch $@

build: setup

test: setup
	@$(ROS_ENV); python -m pytest $(PYTEST_PATHS)
	@$(MAKE) --no-print-directory lint

# Skips tests marked slow (training to convergence, HTP compilation, 60 s soak).
test-fast: setup
	@$(ROS_ENV); python -m pytest -m "not slow" $(PYTEST_PATHS)

lint: $(VENV)/.offroad-setup-stamp
	@$(VENV)/bin/ruff check .

format: $(VENV)/.offroad-setup-stamp
	@$(VENV)/bin/ruff format .

demo: setup
	@$(ROS_ENV); python scripts/demo/run.py $(DEMO_ARGS)

bench: setup
	@$(ROS_ENV); for b in bench/bench_*.py; do echo "== $$b"; python "$$b"; done

# Re-pin every installed version after a deliberate upgrade.
constraints: $(VENV)/.offroad-setup-stamp
	@{ echo "# Exact versions of everything make setup installs (pip freeze of a working .venv)."; \
	   echo "# Regenerate with: make constraints"; \
	   $(VENV)/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements/constraints.txt

clean:
	rm -rf build install log

FORCE:
