#!/usr/bin/env python3
"""Top stall locations of one kernel from `ncu --page source --print-source sass --csv` output:
python3 tools/device/ncu_hot.py FILE.csv [N] — prints the N instructions with the most warp-stall
samples, their dominant reasons and execution counts (used to find where a kernel waits)."""
import csv
import sys

rows = list(csv.reader(open(sys.argv[1])))
n_top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
heads = [i for i, r in enumerate(rows) if r and r[0] == "Address"]
for hi in heads:
    kname = next((r[1] for r in reversed(rows[:hi]) if r and r[0] == "Kernel Name"), "?")
    h = rows[hi]
    data = []
    for r in rows[hi + 1:]:
        if not r or r[0] in ("Kernel Name", "Address"):
            break
        if len(r) == len(h):
            data.append(r)
    ix = {n: i for i, n in enumerate(h)}
    col = ix["Warp Stall Sampling (All Samples)"]
    total = sum(int(r[col]) for r in data)
    reasons = [n for n in h if n.startswith("stall_") and "Not Issued" not in n]
    print(f"== {kname[:110]}\n   {len(data)} instructions, {total} stall samples")
    for i in sorted(range(len(data)), key=lambda i: -int(data[i][col]))[:n_top]:
        r = data[i]
        top = sorted(((int(r[ix[n]]), n[6:]) for n in reasons), reverse=True)[:2]
        why = ", ".join(f"{n} {v}" for v, n in top if v)
        print(f"   #{i:5d} {int(r[col]):6d}  {r[1].strip()[:60]:60s} exec {r[ix['Instructions Executed']]:>8s}  [{why}]")
