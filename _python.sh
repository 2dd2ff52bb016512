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
# The command that runs scripts/$1.py: in this process, or under torchrun with $NPROC processes on this
# machine (and any rendezvous options in $TORCHRUN_ARGS), started by scripts/launch.py so that an error is
# printed once and its exit code (2: a mistake to fix) is kept. Exits 2 when NPROC is not a whole number >= 1.
command_for() {
    NPROC=${NPROC:-1}
    case "$NPROC" in
        ''|*[!0-9]*) _bad=1 ;;
        *) [ "$NPROC" -ge 1 ] && _bad= || _bad=1 ;;
    esac
    if [ -n "$_bad" ]; then
        echo "error: NPROC must be a whole number >= 1 (processes on this machine), got '$NPROC'" >&2
        exit 2
    fi
    if [ "$NPROC" -gt 1 ] || [ -n "${TORCHRUN_ARGS:-}" ]; then
        echo "$PY -m scripts.launch --nproc_per_node $NPROC ${TORCHRUN_ARGS:-} $REPO/scripts/$1.py"
    else
        echo "$PY -m scripts.$1"
    fi
}
