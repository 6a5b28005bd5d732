#!/usr/bin/env bash
# SMOKE=labs, inside the course VM: every lab's handout typed at the prompt as a
# student would (`infralab up TOPOLOGY --script labs/NAME.cli`), each on a fresh network
# and each ending with its checker. Every verdict line starts with LABS-SMOKE (vm/smoke.sh
# quotes them); exit 0 only when every lab says "N/N steps done". SMOKE_ENV="LABS=gslb,dhcp"
# runs only those.
set -uo pipefail
cd /opt/infralab
say() { echo "LABS-SMOKE: $*"; }
env_raw=/sys/firmware/qemu_fw_cfg/by_name/opt/infralab.env/raw  # vm/smoke.sh SMOKE_ENV
if [ -r "$env_raw" ]; then
  for kv in $(tr -d '\0' < "$env_raw"); do export "${kv?}"; done
fi
status=0
for lab in nat:world dns:world gslb:world natlab:natlab dhcp:dhcplab; do
  name=${lab%%:*} topo=${lab#*:}
  case ",${LABS:-$name}," in *",$name,"*) ;; *) continue ;; esac
  t0=$(date +%s)
  .venv/bin/infralab up "$topo" --script "labs/$name.cli" > "/tmp/lab-$name.log" 2>&1
  rc=$?
  done_line=$(grep -aoE "[0-9]+/[0-9]+ steps done" "/tmp/lab-$name.log" | tail -n 1)
  say "$name on $topo: ${done_line:-no checker output}, exit $rc, $(( $(date +%s) - t0 )) s"
  n=${done_line%%/*} m=${done_line#*/}; m=${m%% *}
  if [ "$rc" -ne 0 ] || [ -z "$done_line" ] || [ "$n" != "$m" ]; then
    status=1
    tail -n 25 "/tmp/lab-$name.log" | sed "s/^/LABS-SMOKE: $name: /"
  fi
done
say "done, status $status"
exit $status
