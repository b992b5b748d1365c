# The commands a newcomer needs; each installs what it needs by itself.
.PHONY: run test lint
run:   ## start the whole system on SQLite under supervisord (Ctrl-C stops it)
	scripts/run
test:  ## run the full test suite
	scripts/test
lint:  ## ruff, formatting, mypy, import contracts
	scripts/lint
