#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# A tiny QMP client for the e2e scripts (vhost_blk_pci.sh, vhost_user_blk.sh).
#   qmp.py SOCKET COMMAND [ARGS-JSON]  prints the "return" value as JSON
#                                      (exit 0) or the error (exit 1)
#   qmp.py SOCKET --wait-migrate SECS  polls query-migrate until it completes
#                                      (exit 0) or fails (exit 1)
import json, socket, sys, time
path = sys.argv[1]
def connect():
    end = time.time() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(path)
            break
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.2)
    f = s.makefile("rw")
    json.loads(f.readline())
    call(f, "qmp_capabilities")
    return f
def call(f, cmd, args=None):
    m = {"execute": cmd}
    if args:
        m["arguments"] = args
    f.write(json.dumps(m) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("QMP connection closed")
        r = json.loads(line)
        if "event" not in r:
            return r
f = connect()
if sys.argv[2] == "--wait-migrate":
    end = time.time() + float(sys.argv[3])
    while time.time() < end:
        r = call(f, "query-migrate")["return"]
        st = r.get("status")
        if st == "completed":
            print(json.dumps(r))
            sys.exit(0)
        if st in ("failed", "cancelled"):
            print(json.dumps(r))
            sys.exit(1)
        time.sleep(0.5)
    print("migration not finished after %s s: %s" % (sys.argv[3], json.dumps(r)))
    sys.exit(1)
r = call(f, sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
if "return" in r:
    print(json.dumps(r["return"]))
    sys.exit(0)
print(json.dumps(r.get("error", r)))
sys.exit(1)
