#!/usr/bin/env bash
# Install what tests/slurm/cluster.py needs for a single-node SLURM test cluster (slurmctld, slurmd,
# munge), from Debian's packages, when missing. Usage: tools/slurm_install.sh
set -euo pipefail
"$(dirname "$0")/apt_install.sh" slurm-wlm munge
