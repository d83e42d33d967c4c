# `make demo` and `make test` do all the set-up on a fresh machine (Python 3.10+ with venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# DDS stays on loopback, and each make run gets a domain of its own so parallel runs never hear each other.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell $(PYTHON) -c 'import os; print(1 + os.getpid() % 100)')
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
# Camera-sized frames through shared memory instead of lossy UDP fragments (see the XML's comment).
export FASTRTPS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_large_images.xml
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(FASTRTPS_DEFAULT_PROFILES_FILE)

.PHONY: venv test test-fast lint demo bench endurance clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml $(wildcard interfaces/*.* interfaces/vision_msgs/*.* interfaces/vision_msgs/msg/*.msg)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	# vision_msgs into the venv where it does not import (docs/vision_msgs.md)
	interfaces/build_into_venv.sh $(VENV)
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q test

# Unit and core tests: no ROS node, no DDS, nothing marked slow (markers in pytest.ini).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not ros and not slow" test

# ruff, configured in ruff.toml (line length 120); make test runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/ttt-perception demo

# The CPU quick profiles, one after the other (each under 15 minutes on a 2-core machine), then docs/results.md.
bench: $(STAMP)
	$(VENV)/bin/ttt-perception bench accuracy --quick
	$(VENV)/bin/ttt-perception bench gradual --quick
	$(VENV)/bin/ttt-perception bench realtime --quick
	$(VENV)/bin/ttt-perception bench correlation --quick
	$(VENV)/bin/ttt-perception bench report

# The node for about 40 minutes: a 30,000-frame soak, 1,000 fuzzed messages, 50 lifecycle cycles and
# the automatic reset; results/endurance.json and the summary docs/endurance.md quotes.
endurance: $(STAMP)
	$(VENV)/bin/ttt-perception bench endurance

clean:
	rm -rf $(VENV) build install log .pytest_cache
