# One command each: `make demo` (the main job against the embedded test bed) and `make test`
# (every check CI runs). Both install what they need into .venv from pinned requirement files.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ansible-test wants the collection at ansible_collections/<namespace>/<name>, outside any git
# checkout: inside one it asks git for the files, and an ignored copy would have none.
SANITY_BASE ?= $(or $(TMPDIR),/tmp)/cmk-atlas-sanity
SANITY_ROOT := $(SANITY_BASE)/ansible_collections/cmk/atlas
GET_PIP_STANDIN := $(HOME)/.ansible/test/cache/get_pip_24_2.py
PYTEST_WORKERS ?= auto

.PHONY: help demo test venv lint ruff unit integration sanity ansible-lint changelog-lint clean bench

help:
	@echo "make demo   run the enable and switch playbooks against the embedded test bed"
	@echo "make test   ruff, unit and integration tests, ansible-test sanity, ansible-lint (production)"

$(STAMP): requirements/test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	touch $@

venv: $(STAMP)

test: lint unit integration sanity ansible-lint
	@echo "make test: all checks passed"

lint: ruff changelog-lint

ruff: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

changelog-lint: $(STAMP)
	$(BIN)/antsibull-changelog lint

unit: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) tests/unit tests/emulators/tests

integration: $(STAMP)
	@if ls tests/integration/test_*.py >/dev/null 2>&1; then \
		$(BIN)/pytest -q -n $(PYTEST_WORKERS) tests/integration; \
	else echo "integration: no playbook tests yet"; fi

# ansible-test needs a pip bootstrap script from a host that may be unreachable: provide a
# stand-in that uses ensurepip and the configured package index instead.
$(GET_PIP_STANDIN): tools/offline_get_pip.py
	mkdir -p $(dir $@)
	cp $< $@

sanity: $(STAMP) $(GET_PIP_STANDIN)
	rm -rf $(SANITY_ROOT)
	mkdir -p $(SANITY_ROOT)
	git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - | tar xf - -C $(SANITY_ROOT)
	cd $(SANITY_ROOT) && $(CURDIR)/$(BIN)/ansible-test sanity --venv --python 3.11 --color no > $(SANITY_BASE)/sanity.log 2>&1; \
		rc=$$?; cat $(SANITY_BASE)/sanity.log; \
		if grep -q "All targets skipped" $(SANITY_BASE)/sanity.log; then echo "sanity: no file was checked"; exit 1; fi; \
		exit $$rc
	rm -rf $(SANITY_BASE)

# --offline: ansible-lint does not install this collection, so it finds cmk.atlas roles and
# modules through the checkout linked at .ansible/collections/ansible_collections/cmk/atlas.
ansible-lint: $(STAMP)
	mkdir -p .ansible/collections/ansible_collections/cmk
	ln -sfn $(CURDIR) .ansible/collections/ansible_collections/cmk/atlas
	PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/.ansible/collections" $(BIN)/ansible-lint --profile production --offline

demo: $(STAMP)
	$(BIN)/python tools/demo.py

clean:
	rm -rf $(VENV) .ansible tests/output .pytest_cache .ruff_cache .hypothesis

# Not part of `make test`: timed runs against the test bed, beside a hand-written amazon.aws + uri
# baseline. Its own venv keeps the `ansible` package (for amazon.aws) out of the test toolchain.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?= --runs 5 --output docs/performance.md

$(BENCH_STAMP): tests/benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(BENCH_VENV)/bin/python -m pip install --quiet -r tests/benchmarks/requirements.txt
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python tests/benchmarks/bench.py --ansible-bin $(BENCH_VENV)/bin $(BENCH_ARGS)
