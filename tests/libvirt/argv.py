#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compares the vhost-user part of the QEMU command line libvirt generates
for a domain XML with the one the e2e runs (tests/e2e/vhost_user_args.sh).

  argv.py values XML                 prints "SOCKET QUEUES MEMSIZE" of the XML's
                                     vhostuser disk, for vhost_user_blk_args
  argv.py compare XML LIBVIRT E2E    LIBVIRT: a file with virsh domxml-to-native's
                                     output; E2E: the e2e's arguments.  Prints one
                                     line per check: "ok NAME" or "not ok NAME # WHY"

Options are compared as parsed values (libvirt writes -object and -device as
JSON, the e2e as key=value), ids and references resolved; libvirt may add
only the properties listed in EXTRA.
"""
import json
import shlex
import sys
import xml.etree.ElementTree as ET

# Keys that name the option's type when it is written as "type,key=value".
IMPLIED = {"-object": "qom-type", "-chardev": "backend", "-device": "driver",
           "-numa": "type", "-machine": "type"}
# What libvirt adds beyond the e2e's arguments, and why that is fine.
EXTRA = {
    "chardev": {"id", "reconnect"},	# reconnect: checked against the XML
    "device": {"id", "bus", "addr", "bootindex"},	# placement, boot order
    "memory": {"id", "x-use-canonical-path-for-ramblock-id"},	# migration compat
}
SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
UNITS = {"b": 1, "bytes": 1, "KiB": 1 << 10, "k": 1 << 10, "MiB": 1 << 20,
         "M": 1 << 20, "GiB": 1 << 30, "G": 1 << 30, "TiB": 1 << 40, "T": 1 << 40}


def value(key, v):
    if isinstance(v, str):
        if v in ("on", "true", "yes"):
            return True
        if v in ("off", "false", "no"):
            return False
        if v.isdigit():
            return int(v)
        if key == "size" and v[:-1].isdigit() and v[-1] in SUFFIX:
            return int(v[:-1]) * SUFFIX[v[-1]]
    return v


def parse_opt(opt, arg):
    if arg.startswith("{"):
        d = json.loads(arg)
    else:
        d = {}
        for i, part in enumerate(arg.split(",")):
            k, eq, v = part.partition("=")
            if not eq and i == 0 and opt in IMPLIED:
                k, v = IMPLIED[opt], part
            d[k] = v
    return {k: value(k, v) for k, v in d.items()}


def parse_argv(words):
    opts = []
    for i, w in enumerate(words[:-1]):
        if w in IMPLIED:
            opts.append((w, parse_opt(w, words[i + 1])))
    return opts


def vhost_user_part(words):
    """The vhost-user-blk device, its chardev and the guest RAM backend."""
    opts = parse_argv(words)
    devs = [d for o, d in opts if o == "-device" and d.get("driver") == "vhost-user-blk-pci"]
    if len(devs) != 1:
        raise ValueError("%d vhost-user-blk-pci devices" % len(devs))
    dev = devs[0]
    chardevs = {d.get("id"): d for o, d in opts if o == "-chardev"}
    objects = {d.get("id"): d for o, d in opts if o == "-object"}
    ram = [d.get("memory-backend") for o, d in opts if o == "-machine" and "memory-backend" in d]
    ram += [d.get("memdev") for o, d in opts if o == "-numa" and "memdev" in d]
    if len(ram) != 1:
        raise ValueError("guest RAM backends: %s" % ram)
    return {"device": dev, "chardev": chardevs.get(dev.get("chardev")),
            "memory": objects.get(ram[0])}


def xml_disk(path):
    root = ET.parse(path).getroot()
    disk = root.find("devices/disk[@type='vhostuser']")
    src = disk.find("source")
    rec = src.find("reconnect")
    mem = root.find("memory")
    size = int(mem.text) * UNITS[mem.get("unit", "KiB")]
    return {"socket": src.get("path"), "queues": int(disk.find("driver").get("queues", "1")),
            "mem_mib": size >> 20,
            "reconnect": int(rec.get("timeout")) if rec is not None and rec.get("enabled") == "yes" else None}


def compare(name, want, got):
    """Every property the e2e sets, libvirt sets the same; nothing else but EXTRA."""
    if got is None:
        return "not found"
    diff = ["%s=%r, e2e %r" % (k, got.get(k), v) for k, v in want.items()
            if k not in ("id", "chardev") and got.get(k) != v]
    diff += ["%s=%r added" % (k, v) for k, v in got.items()
             if k not in want and k not in EXTRA[name]]
    return "; ".join(diff)


def main():
    if sys.argv[1] == "values":
        x = xml_disk(sys.argv[2])
        print(x["socket"], x["queues"], "%dM" % x["mem_mib"])
        return 0
    x = xml_disk(sys.argv[2])
    text = open(sys.argv[3]).read().replace("\\\n", " ")
    lv = vhost_user_part(shlex.split(text))
    e2e = vhost_user_part(shlex.split(sys.argv[4]))
    checks = [
        ("chardev", "chardev: a unix socket client on the XML's path, as in the e2e"),
        ("device", "-device vhost-user-blk-pci with num-queues as in the e2e"),
        ("memory", "guest RAM: memory-backend-memfd, share=on, as in the e2e"),
    ]
    failed = 0
    for key, title in checks:
        why = compare(key, e2e[key], lv[key])
        failed += bool(why)
        print(("not ok %s # %s" % (title, why)) if why else "ok %s" % title)
    rec = lv["chardev"].get("reconnect") if lv["chardev"] else None
    title = "chardev: reconnect= from the XML's <reconnect enabled='yes' timeout>"
    if x["reconnect"] is None:
        why = "the XML has no <reconnect enabled='yes'>"
    elif rec != x["reconnect"]:
        why = "reconnect=%s, XML timeout %s" % (rec, x["reconnect"])
    else:
        why = ""
    failed += bool(why)
    print(("not ok %s # %s" % (title, why)) if why else "ok %s (%s s)" % (title, rec))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
