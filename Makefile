.PHONY: install test lint bench

install:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'

test: install
	.venv/bin/pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	.venv/bin/python bench/commands.py
