#!/usr/bin/env bash
# The known-bug benchmark on the emulated POWER9 lab (issue 15): each bug of
# Guests/lab/bugs/registry.json brought back into Debian's 6.1 kvm_hv (its canary patch),
# built with Guests/lab/kernel.sh (one shared tree, cached by patch), run through the raw path
# with every job that reaches it, N runs each, with the stock kernel as the control in the same
# session. Writes bugs.json and a markdown table (bugs.md beside it) as it goes.
#
#   scripts/lab-bugs.sh [BUG...] [--patch FILE.patch]... [--job JOB.yaml]... [--runs N]
#                       [--budget SECONDS] [--control-runs N] [--json FILE]
#
#   BUG           ids from the registry (default: every ported bug); unknown ids exit 2.
#   --patch       any patch against the lab's 6.1 tree (repeatable): its id is the file's name
#                 without .patch; it has no canary and no expected title, so "detected" means a
#                 crash or an integrity finding the stock control does not show. It runs every
#                 job of the registry and its reach jobs (Jobs/bugs/reach-*.yaml).
#   --job         run these jobs (repeatable) instead of each bug's own.
#   --runs        runs per bug and job (default 5); seeds 1..N.
#   --budget      each run's duration_s (default: the job's own); a run ends at its first crash.
#   --control-runs  runs of each job on the stock kernel (default 1).
#   --json        where bugs.json goes (default runs/lab-bugs-TIME/bugs.json).
#   --rescore DIR score a finished benchmark again from its run directories (after a change
#                 to the detector or the registry), rewriting DIR/bugs.json and bugs.md.
# Exit: 0 every bug detected in at least 4 of 5 of its runs (scaled to --runs) and a clean
# control; 1 otherwise; 2 bad arguments or a patch that does not apply (named); 125 a kernel
# that does not build or a lab that does not boot. Results already written stay in bugs.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cross.sh
exec python3 scripts/lab_bugs.py "$@"
