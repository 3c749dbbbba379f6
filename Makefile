# Convenience targets; the README's two commands are the source of truth.
.PHONY: install test unit notebooks figures lint bench

install:
	pip install -e ".[notebooks,dev]"

test:            ## unit tests and every notebook, headless (what CI runs)
	HF_HUB_OFFLINE=1 python -m pytest

unit:            ## unit tests only (about 5 minutes on a 2-core CPU)
	HF_HUB_OFFLINE=1 python -m pytest -m "not notebook"

notebooks:       ## re-execute every lesson and its worked solutions in place with default parameters (seeded CPU run)
	cd notebooks && for nb in [0-9][0-9]_*.ipynb; do \
		HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 papermill "$$nb" "$$nb" -k python3 || exit 1; \
	done
	cd notebooks/solutions && for nb in [0-9][0-9]_*.ipynb; do \
		HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 papermill "$$nb" "$$nb" -k python3 || exit 1; \
	done

figures:         ## regenerate the figures under docs/figures (lesson 06 with figures_dir set, the teaser, the diagrams)
	cd notebooks && HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 papermill 06_evaluation.ipynb "$${TMPDIR:-/tmp}/06_figures.ipynb" \
		-k python3 -p figures_dir "$$(cd ../docs/figures && pwd)"
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python docs/make_teaser.py
	python docs/make_diagrams.py

lint:
	ruff check cliphaze tests benchmarks data

bench:           ## speed/memory tables (not part of the tests)
	OMP_NUM_THREADS=1 python benchmarks/scan.py
