# One command each: `make demo` (the main job against the embedded test bed) and `make test`
# (every check CI runs). Both install what they need into .venv from pinned requirement files.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ansible-test wants the collection at ansible_collections/<namespace>/<name>, outside any git
# checkout: inside one it asks git for the files, and an ignored copy would have none.
SANITY_BASE ?= $(or $(TMPDIR),/tmp)/cmk-atlas-sanity
# ansible-test looks for get_pip_<the pip version it bootstraps>.py: 24.2 for ansible-core 2.18 and
# 2.19, 23.1.2 for 2.17 (get_venv_packages() in ansible_test/_internal/python_requirements.py).
GET_PIP_CACHE := $(HOME)/.ansible/test/cache
GET_PIP_STANDIN := $(GET_PIP_CACHE)/get_pip_24_2.py
GET_PIP_STANDIN_2.17 := $(GET_PIP_CACHE)/get_pip_23_1_2.py
PYTEST_WORKERS ?= auto
# The playbook runs wait on the test bed's answers part of the time, so a third worker keeps both cores of
# these machines busy (measured: 181 playbook tests in 8 min 40 s with 3 workers, 9 min 50 s with 2).
INTEGRATION_WORKERS ?= 3

.PHONY: help demo test venv lint ruff unit integration sanity ansible-lint changelog-lint clean bench compat

help:
	@echo "make demo   run the enable, switch and rotate playbooks against the embedded test bed"
	@echo "make test   ruff, unit and integration tests, ansible-test sanity, ansible-lint (production),"
	@echo "            and unit tests, sanity and one playbook run on ansible-core $(COMPAT_VERSIONS) (make compat)"

$(STAMP): requirements/test.txt
	@echo "Installing the test toolchain into $(VENV) (first run only, about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	touch $@

venv: $(STAMP)

test: lint unit integration sanity ansible-lint compat
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
		$(BIN)/pytest -q -n $(INTEGRATION_WORKERS) tests/integration; \
	else echo "integration: no playbook tests yet"; fi

# ansible-test needs a pip bootstrap script from a host that may be unreachable: provide a
# stand-in that uses ensurepip and the configured package index instead.
$(GET_PIP_STANDIN) $(GET_PIP_STANDIN_2.17): tools/offline_get_pip.py
	mkdir -p $(dir $@)
	cp $< $@

# $(call run_sanity,<ansible-test>,<work dir>,<extra arguments>): ansible-test sanity on a copy of the
# tracked files under <work dir>/ansible_collections/cmk/atlas; fails when no file was checked.
define run_sanity
	rm -rf $(2)
	mkdir -p $(2)/ansible_collections/cmk/atlas
	git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - | tar xf - -C $(2)/ansible_collections/cmk/atlas
	cd $(2)/ansible_collections/cmk/atlas && $(CURDIR)/$(1) sanity --venv --python 3.11 --color no $(3) > $(2)/sanity.log 2>&1; \
		rc=$$?; cat $(2)/sanity.log; \
		if grep -q "All targets skipped" $(2)/sanity.log; then echo "sanity: no file was checked"; exit 1; fi; \
		exit $$rc
	rm -rf $(2)
endef

sanity: $(STAMP) $(GET_PIP_STANDIN)
	$(call run_sanity,$(BIN)/ansible-test,$(SANITY_BASE))

# --offline: ansible-lint does not install this collection, so it finds cmk.atlas roles and
# modules through the checkout linked at .ansible/collections/ansible_collections/cmk/atlas.
ansible-lint: $(STAMP)
	mkdir -p .ansible/collections/ansible_collections/cmk
	ln -sfn $(CURDIR) .ansible/collections/ansible_collections/cmk/atlas
	PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/.ansible/collections" $(BIN)/ansible-lint --profile production --offline

# -- older ansible-core ------------------------------------------------------------------------------
# meta/runtime.yml claims requires_ansible >=2.17.0 while the main toolchain is 2.19, so every older
# minor version in COMPAT_VERSIONS gets its own .venv-<version> from requirements/ansible-<version>.txt
# (the pins of requirements/test.txt, but ansible-core and what it needs) and `make compat` runs there:
#   unit-<version>      tests/unit (the module_utils against that ansible-core). Not tests/emulators/tests:
#                       the test bed does not import ansible, so those tests would only repeat.
#   playbook-<version>  one playbook test end to end (COMPAT_PLAYBOOK_TEST): build and install the
#                       collection and run it with that version's ansible-galaxy and ansible-playbook.
#   sanity-<version>    that version's ansible-test sanity, SANITY_COMPAT_ARGS (see there).
COMPAT_VERSIONS := 2.17 2.18
COMPAT_STAMPS := $(foreach v,$(COMPAT_VERSIONS),.venv-$(v)/.installed)
COMPAT_PLAYBOOK_TEST ?= tests/integration/test_playbook_plan_before_write.py::test_a_failure_part_way_names_the_writes_made_and_a_rerun_continues
# On the older versions only the sanity tests whose result depends on the ansible-core under test:
# they load the plugins and their documentation with it (ansible-doc, action-plugin-docs, import,
# validate-modules), check meta/runtime.yml against its schema (runtime-metadata) and compile for
# its Python list (compile). The others read the files with text and style tools (pylint, pep8,
# yamllint, shellcheck, line-endings, ...) and run on 2.19 in `make sanity`; repeating them on two
# more versions cost about 1 minute each (74 s for all 24 tests against 14 s for these six on 2.17,
# measured with warm caches). `make sanity-2.17 SANITY_COMPAT_ARGS=` runs them all.
SANITY_COMPAT_ARGS ?= --test action-plugin-docs --test ansible-doc --test compile --test import \
	--test runtime-metadata --test validate-modules

.PHONY: $(foreach v,$(COMPAT_VERSIONS),test-$(v) venv-$(v) unit-$(v) playbook-$(v) sanity-$(v))

$(COMPAT_STAMPS): .venv-%/.installed: requirements/ansible-%.txt
	@echo "Installing the ansible-core $* toolchain into .venv-$* (first run only, about a minute)..."
	rm -rf .venv-$*
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip==25.3
	.venv-$*/bin/python -m pip install --quiet -r $<
	touch $@

$(foreach v,$(COMPAT_VERSIONS),venv-$(v)): venv-%: .venv-%/.installed

$(foreach v,$(COMPAT_VERSIONS),unit-$(v)): unit-%: .venv-%/.installed
	.venv-$*/bin/pytest -q -n $(PYTEST_WORKERS) tests/unit

$(foreach v,$(COMPAT_VERSIONS),playbook-$(v)): playbook-%: .venv-%/.installed
	.venv-$*/bin/pytest -q $(COMPAT_PLAYBOOK_TEST)

$(foreach v,$(COMPAT_VERSIONS),sanity-$(v)): sanity-%: .venv-%/.installed
	$(call run_sanity,.venv-$*/bin/ansible-test,$(SANITY_BASE)-$*,$(SANITY_COMPAT_ARGS))
sanity-2.17: $(GET_PIP_STANDIN_2.17)
sanity-2.18: $(GET_PIP_STANDIN)

$(foreach v,$(COMPAT_VERSIONS),test-$(v)): test-%: unit-% playbook-% sanity-%

compat: $(foreach v,$(COMPAT_VERSIONS),test-$(v))

demo: $(STAMP)
	$(BIN)/python tools/demo.py

clean:
	rm -rf $(VENV) $(foreach v,$(COMPAT_VERSIONS),.venv-$(v)) .ansible tests/output .pytest_cache .ruff_cache .hypothesis

# Not part of `make test`: timed runs against the test bed, beside the one-module floor and a hand-written
# amazon.aws baseline (tests/benchmarks/README.md); `make bench BENCH_ARGS=--quick` for a short run that
# writes nothing. Its own venv keeps the `ansible` package (for amazon.aws) out of the test toolchain.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?= --runs 5 --output docs/performance.md

$(BENCH_STAMP): tests/benchmarks/requirements.txt
	@echo "Installing the benchmark toolchain into $(BENCH_VENV) (first run only, about a minute)..."
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(BENCH_VENV)/bin/python -m pip install --quiet -r tests/benchmarks/requirements.txt
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python tests/benchmarks/bench.py --ansible-bin $(BENCH_VENV)/bin $(BENCH_ARGS)
