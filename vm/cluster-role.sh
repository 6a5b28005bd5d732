#!/usr/bin/env bash
# Inside the course VM, for `make vm-cluster-smoke` (vm/cluster-smoke.sh): two guests of the
# same image on one private virtual network, each a real kernel. ROLE clusterb is a server:
# its address, the test key authorised for root, sshd, then it waits to be switched off.
# ROLE clustera is where `infralab up` runs: it is a server too (ssh to itself), and runs
# duo split over both — r1 here, r2 on the other guest, the link between them a tunnel —
# first by VXLAN, then by GRE (this kernel has ip_gre), and reports on the serial console.
set -uo pipefail
ROLE=$1
cd /opt/infralab
fw=/sys/firmware/qemu_fw_cfg/by_name/opt
declare -A ADDR=([clustera]=198.19.253.11 [clusterb]=198.19.253.12)
declare -A MAC=([clustera]=52:54:00:19:25:11 [clusterb]=52:54:00:19:25:12)
say() { echo "INFRALAB-CLUSTER $ROLE: $*" > /dev/ttyS0; echo "$*"; }

intf=$(ip -o link | awk -v m="${MAC[$ROLE]}" '$0 ~ m {sub(":", "", $2); print $2}')
[ -n "$intf" ] || { say "no interface with MAC ${MAC[$ROLE]}"; exit 1; }
ip link set "$intf" mtu 9000 up
ip addr add "${ADDR[$ROLE]}/24" dev "$intf"
install -d -m 0700 /root/.ssh
cat "$fw/infralab.pubkey/raw" >> /root/.ssh/authorized_keys
systemctl start ssh
say "up at ${ADDR[$ROLE]} on $intf, sshd $(systemctl is-active ssh)"
if [ "$ROLE" = clusterb ]; then
  sleep 3000  # until clustera is done and the host switches us off
  exit 0
fi

install -m 0600 "$fw/infralab.key/raw" /root/.ssh/id_ed25519
for i in $(seq 120); do  # the other guest boots at its own (emulated) pace
  ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 \
    root@198.19.253.12 true 2>/dev/null && break
  sleep 5
done
script() {  # $1: the largest ICMP payload with DF set (GRE links are 1450 bytes)
  cat <<CLI
h1 ping -c 3 -W 5 h4
h5 ping -c 3 -W 5 h1
h1 traceroute -n -w 3 -q 1 10.0.4.10
h1 ping -c 2 -W 5 -M do -s $1 10.0.3.10
h4 iperf3 -s -D -1
h1 sleep 1
h1 iperf3 -c 10.0.3.10 -t 3
CLI
}
status=0
for tunnel in vxlan gre; do
  say "infralab up duo --servers 198.19.253.11,198.19.253.12 --tunnel $tunnel"
  script "$([ $tunnel = gre ] && echo 1422 || echo 1472)" > /tmp/duo-split.cli
  if .venv/bin/infralab up duo --servers 198.19.253.11,198.19.253.12 --tunnel $tunnel \
      --script /tmp/duo-split.cli > "/tmp/duo-$tunnel.log" 2>&1; then
    say "PASS $tunnel"
  else
    say "FAIL $tunnel"; status=1
  fi
  sed "s/^/INFRALAB-CLUSTER $tunnel | /" "/tmp/duo-$tunnel.log" > /dev/ttyS0
  left=$(ovs-vsctl list-br; ssh -o BatchMode=yes root@198.19.253.12 ovs-vsctl list-br)
  say "bridges left on the two guests after $tunnel: ${left:-none}"
  [ -z "$left" ] || status=1
done
exit $status
