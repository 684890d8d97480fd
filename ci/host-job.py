#!/usr/bin/env python3
"""Writes JOB with its target: section filled from one entry of hosts.yaml (ci/nightly.yml)."""
import sys
import yaml  # python3-yaml

hosts, name, job = sys.argv[1:4]
entry = next((h for h in yaml.safe_load(open(hosts))["hosts"] if h["name"] == name), None)
if entry is None:
    sys.exit(f"host-job: {name} is not in {hosts}")
doc = yaml.safe_load(open(job))
target = {"kind": "remote", "name": name, "ssh": entry["ssh"], "host_log": "console",
          "console": {"command": entry["console"]}, "power": {"ipmitool": entry["power"]}}
if doc.get("backend") == "libvirt":
    target["libvirt_uri"] = f"qemu+ssh://{entry['ssh'].get('user', 'root')}@{entry['ssh']['host']}/system"
    doc.setdefault("libvirt", {}).pop("uri", None)
doc["target"] = target
yaml.safe_dump(doc, sys.stdout, sort_keys=False)
