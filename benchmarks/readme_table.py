"""Render benchmarks/results/samplers.json as the Markdown table quoted in README.md.

    python benchmarks/readme_table.py [--write]   # --write replaces the BENCH block of README.md
"""

from __future__ import annotations

import argparse
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def render(data) -> str:
    m = data["machine"]
    lines = [
        f"Measured by `python benchmarks/samplers.py` (batch {data['rows'][0]['batch']}) on "
        f"{m['cpu']}, {m['cores']} cores, JAX {m['jax']} ({m['backend']}). Throughput is the wall "
        "clock of a compiled, vmapped batch (plain `vmap` vs the lane-refill runner, 256 lanes, same "
        "indices); steps are per problem; bits are Elias-gamma index lengths (ORC: kappa).",
        "",
        "**Fixed-KL family** (Q = N(m, s²), m ~ U(-0.3, 0.3), P = N(0, 1)):",
        "",
        "| KL bits | sampler | enc/s vmap | enc/s refill | refill speed-up | mean steps | median | "
        "theory E[e^D∞] | mean bits | KL+log2(KL+1)+1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        if r["family"] != "kl":
            continue
        sp = r["refill_encodes_per_s"] / r["vmap_encodes_per_s"]
        lines.append(
            f"| {r['kl_bits_mean']:.2f} | {r['method']} | {r['vmap_encodes_per_s']:,.0f} | "
            f"{r['refill_encodes_per_s']:,.0f} | {sp:.1f}x | {r['steps_mean']:.2f} | "
            f"{r['steps_median']:.0f} | "
            f"{r['theory_steps_global']:.1f} | {r['gamma_bits_mean']:.2f} | {r['kl_plus_log_bits']:.2f} |")
    lines += [
        "",
        "**Gaussian channel** (the GPRS paper's Figure 2 setting; refill runner). Paper columns: "
        "split-on-sample GPRS from the paper's `data/figure2`:",
        "",
        "| I bits | sampler | enc/s | mean steps | median | max | mean bits | paper steps | paper bits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        if r["family"] != "channel":
            continue
        ps = r.get("paper_sac_steps")
        pb = r.get("paper_sac_bits")
        lines.append(
            f"| {r['level_bits']:.2f} | {r['method']} | {r['refill_encodes_per_s']:,.0f} | "
            f"{r['steps_mean']:.2f} | {r['steps_median']:.0f} | {r['steps_max']:.0f} | "
            f"{r['gamma_bits_mean']:.2f} | {ps if ps else ''} | {pb if pb else ''} |")
    lines += ["", "![steps, bits and throughput](benchmarks/results/samplers.png)"]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "samplers.json"))
    a = ap.parse_args()
    with open(a.json) as f:
        table = render(json.load(f))
    if not a.write:
        print(table)
        return
    readme = os.path.join(HERE, "..", "README.md")
    with open(readme) as f:
        text = f.read()
    text = re.sub(r"<!-- BENCH -->.*<!-- /BENCH -->", lambda _: f"<!-- BENCH -->\n{table}\n<!-- /BENCH -->",
                  text, flags=re.S)
    with open(readme, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
