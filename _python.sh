# Sourced by the .sh entry points. REPO = this folder; PY = $PYTHON, else REPO/.venv/bin/python,
# else python3. Commands run in the caller's folder (outputs and relative paths are relative to it).
REPO=${REPO:-$(cd "$(dirname "$0")" && pwd)}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python
else PY=python3
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
