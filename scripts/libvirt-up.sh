#!/usr/bin/env bash
# Makes qemu:///system usable here: installs libvirt's daemon and QEMU for ppc64le guests when
# missing (root with apt), and starts virtlogd and libvirtd when no init system does.
set -euo pipefail
need=()
command -v libvirtd >/dev/null 2>&1 || need+=(libvirt-daemon-system libvirt-clients)
command -v qemu-system-ppc64 >/dev/null 2>&1 || need+=(qemu-system-ppc qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq || echo "hpthammer: apt-get update had errors; trying the install anyway" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "hpthammer: missing ${need[*]}: sudo apt-get install ${need[*]}" >&2
    exit 125
  fi
fi
conf=/etc/libvirt/qemu.conf
# Inside a container's cgroup libvirt cannot create its own; without this, domains fail to start.
if [ -w "$conf" ] && ! grep -q '^cgroup_controllers' "$conf" && [ ! -d /run/systemd/system ]; then
  echo 'cgroup_controllers = [ ]' >>"$conf"
fi
if ! pgrep -x virtlogd >/dev/null; then virtlogd -d; fi
if ! pgrep -x libvirtd >/dev/null; then libvirtd -d; fi
# Up to 60 s: a loaded machine starts libvirtd slowly, and one that was just killed may still
# be exiting (then it is started again once gone).
for _ in $(seq 1 300); do
  virsh -c qemu:///system list --all >/dev/null 2>&1 && exit 0
  pgrep -x libvirtd >/dev/null || libvirtd -d
  sleep 0.2
done
echo "hpthammer: libvirtd did not answer on qemu:///system" >&2
exit 125
