#!/usr/bin/env bash
# Mutation testing of the billing logic (processor/core) and the pricing and claim parts of the
# store (store/ops.py, ledger.py, quoting.py, rerate.py) with the fast tests; configured in
# pyproject.toml [tool.mutmut]. Not part of CI: it takes hours on two cores.
#
#   bash tools/mutation.sh                          # everything (resumes an interrupted run)
#   bash tools/mutation.sh 'processor.core.rating*' # only the mutants whose names match
#   MUTATION_JOBS=4 bash tools/mutation.sh          # more parallel test runs
#
# Tests use TEST_REDIS_URL / REDIS_URL when set, else an embedded Redis. mutmut works in a copy
# (./mutants/); `mutmut results` lists the survivors, `mutmut show NAME` shows one as a diff.
# apply.lua is not mutated by mutmut (it is Lua): tests/test_money_guards.py holds the tests that
# fail on each hand-made Lua mutant (claim check removed, free unit with billed money...).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
    . .venv/bin/activate
fi
python -m pip install -q 'mutmut>=3.8,<4'
mutmut run --max-children "${MUTATION_JOBS:-2}" "$@"
mutmut results | tee mutation-survivors.txt
mutmut export-cicd-stats >/dev/null && cat mutants/mutmut-cicd-stats.json && echo
