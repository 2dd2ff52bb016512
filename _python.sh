# Sourced by the .sh entry points. REPO = this folder; PY = $PYTHON, else REPO/.venv/bin/python,
# else python3. Commands run in the caller's folder (outputs and relative paths are relative to it).
REPO=${REPO:-$(cd "$(dirname "$0")" && pwd)}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python
else PY=python3
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
# The value of a --variant option among the arguments, v2021 without one (train.sh and test.sh name a
# job by it: paper / paper_v2023, demo / demo_v2023).
variant_of() {
    _v=v2021 _prev=
    for _a in "$@"; do
        [ "$_prev" = --variant ] && _v=$_a
        case "$_a" in --variant=*) _v=${_a#--variant=} ;; esac
        _prev=$_a
    done
    echo "$_v"
}
