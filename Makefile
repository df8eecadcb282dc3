# yizhangtu — see README.md
.PHONY: setup demo test lint typecheck bench clean

WORKSPACE ?= demo/yizhangtu-demo.gpkg

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh "$(WORKSPACE)"

test: setup
	bash scripts/test.sh

lint:
	uv run --frozen ruff check src tests benchmarks
	uv run --frozen ruff format --check src tests benchmarks

typecheck:
	uv run --frozen mypy

bench:
	uv run --frozen python benchmarks/import.py --n 100000
	uv run --frozen python benchmarks/overlay.py --n 100000

clean:
	rm -rf demo .pytest_cache
