#!/usr/bin/env bash
# Provision a Debian 12 machine (the course VM, or a Vagrant box) for infralab:
# the same install script the Makefile and CI use, run from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "infralab ready: run 'sudo make demo' or 'sudo make test' in $(pwd)"
