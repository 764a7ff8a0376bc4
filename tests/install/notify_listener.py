#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The service manager's side of sd_notify(3) for one command, as systemd
runs a Type=notify unit: binds a datagram socket, starts the command with
NOTIFY_SOCKET pointing at it and, the moment READY=1 arrives, connects to
each socket given with --expect (nothing is retried: a socket that does not
accept at that moment is a failure).  Then SIGTERM, and the command must
send STOPPING=1 and exit.  Prints key=value lines for the calling test:

  ready=1|0  status=<STATUS= text>
  stat <path>=<uid>:<gid> <octal mode>  connect <path>=ok|<error>
  stopping=1|0  exit=<status>

  notify_listener.py [--timeout S] [--expect SOCKET]... -- CMD [ARGS...]
"""
import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time


def receive(sock, proc, deadline):
    """The next notification as a dict, or None if the command exited or
    the deadline passed first."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([sock], [], [], 0)[0]:
            return None
        if select.select([sock], [], [], min(left, 0.5))[0]:
            msg = sock.recv(4096).decode()
            return dict(l.split("=", 1) for l in msg.split("\n") if "=" in l)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="notify.")
    path = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    proc = subprocess.Popen(a.cmd, env=env)
    deadline = time.monotonic() + a.timeout

    ready = False
    while not ready:
        m = receive(sock, proc, deadline)
        if m is None:
            break
        ready = m.get("READY") == "1"
        if ready:
            for p in a.expect:
                try:
                    st = os.stat(p)
                    print(f"stat {p}={st.st_uid}:{st.st_gid} {st.st_mode & 0o7777:o}")
                except OSError as e:
                    print(f"stat {p}={e.strerror}")
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    c.connect(p)
                    print(f"connect {p}=ok")
                except OSError as e:
                    print(f"connect {p}={e.strerror}")
                finally:
                    c.close()
            print(f"status={m.get('STATUS', '')}")
    print(f"ready={int(ready)}")
    sys.stdout.flush()

    stopping = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        while not stopping:
            m = receive(sock, proc, deadline)
            if m is None:
                break
            stopping = m.get("STOPPING") == "1"
    print(f"stopping={int(stopping)}")
    try:
        rc = proc.wait(max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "timeout"
    print(f"exit={rc}")
    os.unlink(path)
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
