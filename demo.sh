#!/bin/sh
# Everything on a fresh machine: install into .venv, then train and test on synthetic data (CPU).
set -e
cd "$(dirname "$0")"
sh setup.sh
sh train.sh demo "$@"
sh test.sh demo
