#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Turns a benchmark run (tests/bench/matrix.sh in the VM) into
results.json, a Markdown table and a plot of IOPS by queue depth.

    bench-report.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds bench.jsonl (one vblk-bench JSON line per cell) and
bench-env.json.  Ratios are taken between cells of the same run: the VM
runs under TCG, so absolute numbers mean little, ratios do.
"""
import json
import os
import sys

TARGETS = ["raw", "kernel", "kernel-wpoll", "kernel-poll", "kernel-pollc", "kernel-wpollc",
           "kernel-colo", "blkctl", "qsd", "qsd-poll"]
LABEL = {
    "raw": "raw device (io_uring O_DIRECT)",
    "kernel": "vhost-blk (/dev/vhost-blk)",
    "blkctl": "vhost-blkctl serve (vhost-user → vhost-blk)",
    "qsd": "qemu-storage-daemon vhost-user-blk",
    "kernel-poll": "vhost-blk, worker busy polling + driver polling",
    "kernel-pollc": "vhost-blk, as kernel-poll, polled completions (module parameter)",
    "kernel-wpollc": "vhost-blk, as kernel-wpoll, polled completions (module parameter)",
    "kernel-wpoll": "vhost-blk, worker busy polling (adaptive window), driver sleeps",
    "kernel-colo": "vhost-blk, worker on the driver's CPU (no polling)",
    "qsd-poll": "qemu-storage-daemon (adaptive iothread polling) + driver polling",
}


def load(results_dir):
    cells = []
    with open(os.path.join(results_dir, "bench.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                cells.append(json.loads(line))
    env_path = os.path.join(results_dir, "bench-env.json")
    env = json.load(open(env_path)) if os.path.exists(env_path) else {}
    return env, cells


def key(c):
    t = c["tags"]
    return (t["name"], t["backend_kind"], c["rw"], c["depth"], c["queues"],
            t["served_by_workers"])


def index(cells):
    return {key(c): c for c in cells}


def med(c, field):
    return c["median"][field] if c else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def summarize(cells):
    idx = index(cells)
    rows = []
    for c in cells:
        name, bk, rw, d, q, w = key(c)
        raw = idx.get(("raw", bk, rw, d, q, "-"))
        qsd = idx.get(("qsd", bk, rw, d, q, "1"))
        rows.append({
            "target": name, "backend": bk, "rw": rw, "depth": d, "queues": q,
            "workers": w,
            "iops": round(med(c, "iops")),
            "p50_us": round(med(c, "p50_us"), 1),
            "p99_us": round(med(c, "p99_us"), 1),
            "serving_cpu_us_per_io": round(med(c, "serving_cpu_us_per_io"), 2),
            # Sleeps (voluntary context switches) per I/O, each a wake-up;
            # absent in results from before they were measured.
            "serving_sleeps_per_io": c["median"].get("serving_sleeps_per_io"),
            "driver_sleeps_per_io": c["median"].get("driver_sleeps_per_io"),
            "iops_vs_raw": ratio(med(c, "iops"), med(raw, "iops")),
            "iops_vs_qsd": ratio(med(c, "iops"), med(qsd, "iops")),
            "p50_vs_raw": ratio(med(c, "p50_us"), med(raw, "p50_us")),
            "cpu_vs_qsd": ratio(med(c, "serving_cpu_us_per_io"),
                                med(qsd, "serving_cpu_us_per_io")),
        })
    return rows


def goals(cells):
    """The issue's targets, each with its measured value per backend/rw."""
    idx = index(cells)
    out = []
    backends = sorted({c["tags"]["backend_kind"] for c in cells})
    rws = sorted({c["rw"] for c in cells})
    for bk in backends:
        for rw in rws:
            def g(name, d, q, w):
                return idx.get((name, bk, rw, d, q, w))

            def add(goal, value, want, better):
                if value is None:
                    return
                ok = value >= want if better == "higher" else value <= want
                out.append({"backend": bk, "rw": rw, "goal": goal, "value": value,
                            "want": want, "better": better, "met": ok})
            add("kernel IOPS / raw IOPS, QD128, 1 queue",
                ratio(med(g("kernel", 128, 1, "1"), "iops"), med(g("raw", 128, 1, "-"), "iops")),
                0.97, "higher")
            add("kernel serving CPU per I/O / raw's, QD128, 1 queue",
                ratio(med(g("kernel", 128, 1, "1"), "serving_cpu_us_per_io"),
                      med(g("raw", 128, 1, "-"), "serving_cpu_us_per_io")),
                1.0, "lower")
            add("kernel p50 latency / raw, QD1",
                ratio(med(g("kernel", 1, 1, "1"), "p50_us"), med(g("raw", 1, 1, "-"), "p50_us")),
                4.0, "lower")
            add("kernel-colo p50 latency / raw, QD1 (worker on the driver's CPU)",
                ratio(med(g("kernel-colo", 1, 1, "1"), "p50_us"), med(g("raw", 1, 1, "-"), "p50_us")),
                4.0, "lower")
            add("kernel-poll p50 latency / raw, QD1 (busy polling both sides)",
                ratio(med(g("kernel-poll", 1, 1, "1"), "p50_us"), med(g("raw", 1, 1, "-"), "p50_us")),
                1.5, "lower")
            add("kernel-wpoll p50 latency / kernel, QD1 (worker polls, driver sleeps)",
                ratio(med(g("kernel-wpoll", 1, 1, "1"), "p50_us"), med(g("kernel", 1, 1, "1"), "p50_us")),
                1.0, "lower")
            for d in (32, 128):
                add("kernel-wpoll serving CPU per I/O / kernel's, QD%d (polling must not cost at depth)" % d,
                    ratio(med(g("kernel-wpoll", d, 1, "1"), "serving_cpu_us_per_io"),
                          med(g("kernel", d, 1, "1"), "serving_cpu_us_per_io")),
                    1.0, "lower")
            add("kernel-poll p50 latency / qsd-poll, QD1",
                ratio(med(g("kernel-poll", 1, 1, "1"), "p50_us"), med(g("qsd-poll", 1, 1, "1"), "p50_us")),
                1.0, "lower")
            add("kernel IOPS / qemu-storage-daemon, QD128, 1 queue",
                ratio(med(g("kernel", 128, 1, "1"), "iops"), med(g("qsd", 128, 1, "1"), "iops")),
                2.0, "higher")
            add("kernel serving CPU per I/O / qemu-storage-daemon, QD128, 1 queue",
                ratio(med(g("kernel", 128, 1, "1"), "serving_cpu_us_per_io"),
                      med(g("qsd", 128, 1, "1"), "serving_cpu_us_per_io")),
                0.5, "lower")
            for d in (32, 128):
                add("kernel 2 workers / 1 worker, 2 queues, QD%d" % d,
                    ratio(med(g("kernel", d, 2, "2"), "iops"), med(g("kernel", d, 2, "1"), "iops")),
                    1.8, "higher")
            add("vhost-blkctl serve IOPS / kernel direct, QD128, 1 queue",
                ratio(med(g("blkctl", 128, 1, "1"), "iops"), med(g("kernel", 128, 1, "1"), "iops")),
                0.95, "higher")
    return out


def markdown(rows, goal_rows, env):
    lines = []
    lines.append("Kernel %s, %s, %s CPUs (TCG); %s runs of %s s after %s s warm-up, medians."
                 % (env.get("kernel", "?"), env.get("qemu_storage_daemon", "?"),
                    env.get("cpus", "?"), env.get("runs", "?"), env.get("seconds", "?"),
                    env.get("warmup", "?")))
    lines.append("")
    lines.append("| goal | backend | rw | measured | goal | met |")
    lines.append("|---|---|---|---:|---:|---|")
    for g in goal_rows:
        lines.append("| %s | %s | %s | %.2f | %s %.2f | %s |" % (
            g["goal"], g["backend"], g["rw"], g["value"],
            "≥" if g["better"] == "higher" else "≤",
            g["want"], "yes" if g["met"] else "**no**"))
    lines.append("")
    lines.append("| backend | rw | QD | queues | workers | target | IOPS | p50 µs | p99 µs "
                 "| serving CPU µs/IO | sleeps/IO serving | sleeps/IO driver "
                 "| ×raw | ×qsd | CPU ×qsd |")
    lines.append("|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = {t: i for i, t in enumerate(TARGETS)}
    for r in sorted(rows, key=lambda r: (r["backend"], r["rw"], r["depth"], r["queues"],
                                         r["workers"], order.get(r["target"], 9))):
        def f(v):
            return "" if v is None else "%.2f" % v
        lines.append("| %s | %s | %d | %d | %s | %s | %d | %.1f | %.1f | %.2f | %s | %s "
                     "| %s | %s | %s |" % (
                         r["backend"], r["rw"], r["depth"], r["queues"], r["workers"],
                         r["target"], r["iops"], r["p50_us"], r["p99_us"],
                         r["serving_cpu_us_per_io"], f(r["serving_sleeps_per_io"]),
                         f(r["driver_sleeps_per_io"]), f(r["iops_vs_raw"]),
                         f(r["iops_vs_qsd"]), f(r["cpu_vs_qsd"])))
    return "\n".join(lines) + "\n"


def plot(cells, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(c["tags"]["backend_kind"], c["rw"]) for c in cells})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    styles = {"raw": "k-o", "kernel": "C0-s", "blkctl": "C2--^", "qsd": "C3-v",
              "kernel-poll": "C0*", "kernel-pollc": "C5*", "kernel-wpollc": "C5--x", "kernel-colo": "C1P", "qsd-poll": "C3*",
              "kernel-wpoll": "C4-x"}
    for ax, (bk, rw) in zip(axes[0], panels):
        for t in TARGETS:
            for q in (1, 2):
                sel = [c for c in cells
                       if c["tags"]["name"] == t and c["tags"]["backend_kind"] == bk
                       and c["rw"] == rw and c["queues"] == q]
                # 2 queues: the most workers the target was run with.
                ws = sorted({c["tags"]["served_by_workers"] for c in sel})
                sel = [c for c in sel if c["tags"]["served_by_workers"] == (ws[-1] if ws else "")]
                pts = sorted((c["depth"], c["median"]["iops"]) for c in sel)
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(xs, [y / 1000 for y in ys], styles[t],
                        alpha=1.0 if q == 1 else 0.45,
                        label="%s, %d queue%s" % (t, q, "s" if q > 1 else ""))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("queue depth per queue")
        ax.set_ylabel("kIOPS (4 KiB)")
        ax.set_title("%s, %s" % (bk, rw))
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("4 KiB IOPS by queue depth, one TCG VM run: compare ratios, not absolutes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    env, cells = load(sys.argv[1])
    if not cells:
        print("bench-report: no cells in %s" % sys.argv[1], file=sys.stderr)
        return 1
    os.makedirs(sys.argv[2], exist_ok=True)
    rows = summarize(cells)
    goal_rows = goals(cells)
    doc = {"env": env, "labels": LABEL, "goals": goal_rows, "table": rows, "cells": cells}
    with open(os.path.join(sys.argv[2], "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(sys.argv[2], "table.md"), "w") as f:
        f.write(markdown(rows, goal_rows, env))
    try:
        plot(cells, os.path.join(sys.argv[2], "iops-by-depth.png"))
    except ImportError as e:
        print("bench-report: no plot (%s)" % e, file=sys.stderr)
    for g in goal_rows:
        print("%-70s %-9s %-9s %6.2f %s" % (g["goal"], g["backend"], g["rw"], g["value"],
                                            "met" if g["met"] else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
