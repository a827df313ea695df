# The two commands of the quickstart:
#   make book   build the whole book, every cell executed, to book/_build/html/index.html,
#               with every page also a notebook (<page>.ipynb beside <page>.html, and the tree
#               book/_build/notebooks that the publishing workflow pushes to the branch `notebooks`)
#   make test   run the test suite (which also builds the book once, in a temporary folder)
# Both create (or reuse) the virtual environment .venv and install what they need.
# The publishing workflow (.github/workflows/publish.yml) runs only these targets:
#   make book, make dist (wheel and sdist in dist/), make autograder (Gradescope zips).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Where the release files go, and (if set) where the book is built instead of book/_build.
DIST     ?= dist
BOOK_OUT ?=
# Where pip finds torch==2.13.0; empty: PyPI. CI sets https://download.pytorch.org/whl/cpu (no CUDA).
TORCH_INDEX_URL ?=
# Two BLAS/torch thread pools fighting over a small machine can be ten times slower.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 2

.PHONY: book test quick bench clean autograder dist solutions sweep answer-keys

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build book -W -n --keep-going $(if $(BOOK_OUT),--path-output $(BOOK_OUT))
	@echo "Open $(or $(BOOK_OUT),book)/_build/html/index.html; the notebooks are in $(or $(BOOK_OUT),book)/_build/notebooks"

# The solutions edition for instructors: the book plus the worked derivations of book/solutions/.
solutions: $(STAMP)
	mkdir -p book/_build
	cat book/_toc.yml book/solutions/toc-part.yml > book/_build/_toc_solutions.yml
	$(VENV)/bin/jupyter-book build book --toc $(CURDIR)/book/_build/_toc_solutions.yml --path-output book/_build/solutions -W -n --keep-going
	@echo "Open book/_build/solutions/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

# While iterating: everything but the slow tests (book build, fresh venvs, multi-GB dask, training runs).
quick: $(STAMP)
	$(PY) -m pytest -m "not slow"

# The exercise tests and their reference solutions under 100 consecutive random seeds (about 5 minutes):
# run it after writing or changing a test; a failure names the --seed that reproduces it.
# The pages come from the grader's registry (pca_to_vae_grader/pages.py), as for the zips and the tests.
EXERCISE_PAGES = $(shell $(PY) -m pca_to_vae_grader pages)
sweep: $(STAMP)
	$(PY) -m pytest $(EXERCISE_PAGES:%=pca_to_vae_grader/tests/test_%.py) --solutions tests/exercises/solutions -p no:cacheprovider --sweep 100

# The answer keys for instructors (tests/exercises/answer_keys: numpy/scipy, full marks, never the package),
# graded as students' submissions under 20 seeds, then copied to $(DIST)/answer_keys to upload on Gradescope.
answer-keys: $(STAMP)
	$(PY) -m pytest $(EXERCISE_PAGES:%=pca_to_vae_grader/tests/test_%.py) --submission tests/exercises/answer_keys -p no:cacheprovider -q --sweep 20
	mkdir -p $(DIST)/answer_keys
	cp $(EXERCISE_PAGES:%=tests/exercises/answer_keys/%.py) $(DIST)/answer_keys/
	@echo "Answer keys in $(DIST)/answer_keys: each scores full marks when uploaded as a submission"

bench: $(STAMP)
	$(PY) benchmarks/lgm_vs_sklearn.py
	$(PY) benchmarks/vae_vs_lgm.py
	$(PY) benchmarks/lgm_missing.py
	$(PY) benchmarks/lgm_dask.py

clean:
	rm -rf book/_build $(DIST)

# The wheel and the sdist of the package, checked for PyPI (twine check), in dist/.
dist: $(STAMP)
	rm -f $(DIST)/*.whl $(DIST)/*.tar.gz
	$(PY) -m build --outdir $(DIST) .
	$(PY) -m twine check --strict $(DIST)/*.whl $(DIST)/*.tar.gz

# The Gradescope autograder zips, one per exercise page, in dist/autograder/ (book/exercises/instructors.md).
autograder: $(STAMP)
	$(PY) -m pca_to_vae_grader build-zip --out $(DIST)/autograder
