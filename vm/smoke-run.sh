#!/usr/bin/env bash
# Inside the course VM: run the smoke test MODE (vm/smoke-mode.sh read it from the boot)
# from /opt/infralab. The unit (vm/infralab-smoke.service) only calls this file, so a new
# mode comes with the code (vm/smoke.sh TREE=1), not with a rebuilt image.
# check: validate the world, bring up duo; demo: `make demo`; lab: the NAT lab's handout;
# labs: every lab's handout as typed, each ending with every step done (vm/labs-smoke.sh);
# kernel: kernel datapath and netem (vm/kernel-smoke.sh); clustera/clusterb: two guests.
set -uo pipefail
mode=$1
cd /opt/infralab
case "$mode" in
  demo) make demo ;;
  kernel) bash vm/kernel-smoke.sh ;;
  lab) .venv/bin/infralab up world --script labs/nat.cli ;;
  labs) bash vm/labs-smoke.sh ;;
  clustera|clusterb) bash vm/cluster-role.sh "$mode" ;;
  check) .venv/bin/infralab validate world && .venv/bin/infralab up duo --no-cli ;;
  *) echo "smoke: no mode $mode"; exit 2 ;;
esac
