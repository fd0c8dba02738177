"""Merges bench/python/selectors_baseline.py's timings (OUT.json) with
bench_selectors' Google Benchmark JSON into one table: seconds per selector
for numpy and zoobench, their ratio, the total and the geometric mean.

    /usr/bin/python3 bench/python/side_by_side.py NUMPY.json ZOOBENCH.json"""
import json
import math
import sys


def main():
    numpy = json.load(open(sys.argv[1]))
    cpp = json.load(open(sys.argv[2]))
    ours = {}
    for b in cpp["benchmarks"]:
        if b["name"].startswith("BM_Selector/"):
            name = b["name"].split("/")[1]
            if "error_message" in b:
                ours[name] = (None, b["error_message"])
            else:
                unit = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
                ours[name] = (b["real_time"] * unit, "")
    print(f"N = {numpy['n']}, D = {numpy['d']}, C = {numpy['classes']}; numpy {numpy['numpy']}, "
          f"{cpp['context'].get('libtorch_threads', '?')} threads")
    print(f"| selector | numpy/scipy/sklearn (s) | zoobench (s) | speed-up |\n|---|---:|---:|---:|")
    tot_np = tot_zb = 0.0
    logs = []
    for name, r in numpy["selectors"].items():
        zb, err = ours.get(name, (None, "missing"))
        if zb is None:
            print(f"| {name} | {r['seconds']:.4f} | {err} | |")
            continue
        tot_np += r["seconds"]
        tot_zb += zb
        logs.append(math.log(r["seconds"] / zb))
        print(f"| {name} | {r['seconds']:.4f} | {zb:.4f} | {r['seconds'] / zb:.1f}x |")
    print(f"| **all {len(logs)}, total** | {tot_np:.3f} | {tot_zb:.3f} | {tot_np / tot_zb:.1f}x |")
    print(f"| geometric mean of the ratios | | | {math.exp(sum(logs) / len(logs)):.1f}x |")
    if "lfc_scaling" in numpy:
        s = numpy["lfc_scaling"]
        lfc = [b for b in cpp["benchmarks"] if b["name"].startswith("BM_Lfc/20000")]
        if lfc:
            unit = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[lfc[0]["time_unit"]]
            zb = lfc[0]["real_time"] * unit
            print(f"\nLFC at N = {s['n']}, D = {s['d']}: naive N x N numpy {s['naive_seconds']:.2f} s, Gram-free numpy "
                  f"{s['gram_free_seconds']:.4f} s, zoobench {zb:.4f} s: {s['naive_seconds'] / zb:.0f}x the naive form, "
                  f"{s['gram_free_seconds'] / zb:.2f}x the Gram-free numpy form")


if __name__ == "__main__":
    main()
