#!/bin/sh
# Which smoke test, if any, this boot asked for: prints its mode ("check", "demo", "lab",
# "labs", "kernel", a cluster role...: vm/smoke-run.sh runs it) and exits 0,
# or exits 1 (the unit is skipped). vm/smoke.sh asks through QEMU's firmware config
# (-fw_cfg name=opt/infralab.smoke,string=MODE), which works however the disk boots;
# a direct-kernel boot can say infralab.smoke=MODE on the kernel command line instead.
mode=$(sed -n 's/.*infralab\.smoke=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
if [ -z "$mode" ]; then
  modprobe -q qemu_fw_cfg 2>/dev/null || true
  raw=/sys/firmware/qemu_fw_cfg/by_name/opt/infralab.smoke/raw
  [ -r "$raw" ] && mode=$(tr -dc 'a-z0-9' < "$raw")
fi
case "$mode" in
  ""|0) exit 1 ;;
  1) echo check ;;
  *) echo "$mode" ;;  # (vm/smoke-run.sh knows the modes: a new one needs no new image)
esac
