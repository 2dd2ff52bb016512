# Sourced by the .sh entry points: PY = $PYTHON, else ./.venv/bin/python, else python3.
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi
