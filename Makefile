# The two commands of the quickstart:
#   make book   build the whole book, every cell executed, to book/_build/html/index.html
#   make test   run the test suite (which also builds the book once, in a temporary folder)
# Both create (or reuse) the virtual environment .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Two BLAS/torch thread pools fighting over a small machine can be ten times slower.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 2

.PHONY: book test bench clean autograder solutions

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build book -W -n --keep-going
	@echo "Open book/_build/html/index.html"

# The solutions edition for instructors: the book plus the worked derivations of book/solutions/.
solutions: $(STAMP)
	mkdir -p book/_build
	cat book/_toc.yml book/solutions/toc-part.yml > book/_build/_toc_solutions.yml
	$(VENV)/bin/jupyter-book build book --toc $(CURDIR)/book/_build/_toc_solutions.yml --path-output book/_build/solutions -W -n --keep-going
	@echo "Open book/_build/solutions/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/lgm_vs_sklearn.py
	$(PY) benchmarks/vae_vs_lgm.py

clean:
	rm -rf book/_build

# The Gradescope autograder zips, one per exercise page, in dist/autograder/ (book/exercises/instructors.md).
autograder: $(STAMP)
	$(PY) -m autograder build-zip --out dist/autograder
