#!/usr/bin/env python3
"""Writes JOB (a job file, or a nightly plan of Jobs/nightly/) with its target: section filled
from one entry of hosts.yaml (ci/nightly.yml, ci/gitlab-ci.yml)."""
import sys
import yaml  # python3-yaml

hosts, name, job = sys.argv[1:4]
entry = next((h for h in yaml.safe_load(open(hosts))["hosts"] if h["name"] == name), None)
if entry is None:
    sys.exit(f"host-job: {name} is not in {hosts}")
doc = yaml.safe_load(open(job))
target = {"kind": "remote", "name": name, "ssh": entry["ssh"], "host_log": "console",
          "console": {"command": entry["console"]}, "power": {"ipmitool": entry["power"]}}
# A plan's target: goes into each of its jobs; `hpthammer nightly` adds the libvirt URI there.
if doc.get("backend") == "libvirt" and "kernels" not in doc:
    target["libvirt_uri"] = f"qemu+ssh://{entry['ssh'].get('user', 'root')}@{entry['ssh']['host']}/system"
    doc.setdefault("libvirt", {}).pop("uri", None)
doc["target"] = target
yaml.safe_dump(doc, sys.stdout, sort_keys=False)
