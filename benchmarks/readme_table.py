"""Render benchmarks/results/*.json as the Markdown tables quoted in README.md and docs/*.md.

    python benchmarks/readme_table.py           # print every table
    python benchmarks/readme_table.py --write   # refresh every block in the Markdown files

Each table lives in exactly one of README.md and docs/*.md, between a marker line
``<!-- TAG -->`` and ``<!-- /TAG -->`` (TAG from ``TABLES``: BENCH, CODELENGTH, SCALE, RD,
FITSPEED, RD_AUDIO, RD_PROTEIN, RD_VIDEO). ``--write`` replaces each block in whichever
file holds it, and stops with an error when a tag is in no file or in more than one. The
renderers write image paths relative to the repository root; ``relocate`` makes them
relative to the file that quotes the table (``../benchmarks/...`` from docs/).
"""

from __future__ import annotations

import argparse
import json
import os
import re

from jrec_inr.cli import rd_means

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _model_kind(row) -> str:
    """How an RD row's model is named in the table (from the flags ``eval`` records)."""
    parts = ["COMBINER"] + (["linear reparam."] if row.get("linear") else []) + (
        [f"{row['pe_grid']}x{row['pe_grid']} PE grid"] if row.get("pe_grid") else []) + (
        ["blocks across patches"] if row.get("cross_patch") else [])
    return " + ".join(parts)


def _encoder_label(row) -> str:
    """An RD row's encoder: code version, fitting steps + fine-tuning steps per block, and
    from version 3 on whether blocks send their greedy candidate or ORC's sample, from
    version 4 on the fine-tuning's learning-rate multiplier."""
    e = row["encoder"]  # every row records it (rows from before version 2 were backfilled)
    how = "" if "greedy" not in e else (", greedy" if e["greedy"] else ", sample")
    lr = f" at {e['finetune_lr']:g}x lr" if "finetune_lr" in e else ""
    return f"v{e['version']}: {e['fit_steps']} + {e['finetune_steps']}/block{lr}{how}"


def render(data) -> str:
    m = data["machine"]
    lines = [
        f"Measured by `python benchmarks/samplers.py` (batch {data['rows'][0]['batch']}) on "
        f"{m['cpu']}, {m['cores']} cores, JAX {m['jax']} ({m['backend']}). Throughput is the wall "
        "clock of a compiled, vmapped batch (plain `vmap` vs the lane-refill runner, 256 lanes, same "
        "indices); steps are per problem; bits are the default index code's lengths (Elias gamma; "
        "heap indices of branch and bound: Elias delta; ORC and depth-limited A*: kappa = ceil(KL) + 2).",
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
        "**Gaussian channel** (the GPRS paper's Figure 2 setting: I bits of mutual information, "
        "s² = 2^(−2I), m = y(1 − s²), y ~ N(0, 1/(1 − s²)), P = N(0, 1); refill runner). Paper "
        "columns, from the paper's `data/figure2` (DESIGN.md §6), beside the same algorithm: "
        "split-on-sample GPRS (`gprs_bb`), dyadic GPRS (`gprs_bb_dyadic`), AS* (`astar_bb`, steps "
        "only), global GPRS (`gprs`) and global A* coding (= `pfr`) at 3.47 and 6.0 bits. Bits: the "
        "default index code (Elias delta for heap indices, gamma otherwise) and the container's "
        "Zeta code (budget max(KL, ½)):",
        "",
        "| I bits | sampler | enc/s | mean steps | median | q1–q3 | max | bits (default) | bits (Zeta) | "
        "paper steps | paper bits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted((r for r in data["rows"] if r["family"] == "channel"),
                    key=lambda r: (r["method"], r["level_bits"])):
        ps = r.get("paper_steps", r.get("paper_sac_steps"))
        pb = r.get("paper_bits", r.get("paper_sac_bits"))
        zeta = r.get("zeta_bits_mean")
        lines.append(
            f"| {r['level_bits']:.2f} | {r['method']} | {r['refill_encodes_per_s']:,.0f} | "
            f"{r['steps_mean']:.2f} | {r['steps_median']:.0f} | {r['steps_q1']:.0f}–{r['steps_q3']:.0f} | "
            f"{r['steps_max']:.0f} | {r['gamma_bits_mean']:.2f} | {'' if zeta is None else f'{zeta:.2f}'} | "
            f"{ps if ps else ''} | {pb if pb else ''} |")
    bb = ["gprs_bb", "gprs_bb_dyadic", "grc_bb", "astar_bb", "astar_bb_dyadic"]
    chan = {(r["method"], r["level_bits"]): r for r in data["rows"] if r["family"] == "channel"}
    have = [m for m in bb if any(k[0] == m for k in chan)]
    if have:
        paper = {0.95: ("2.06 / 7.68", "1.79 / 4.65", "4.16"),
                 3.5: ("4.66 / 9.87", "3.74 / 8.08", "7.08"),
                 6.9: ("9.09 / 13.58", "6.82 / 12.17", "11.42"),
                 12.0: ("16.13 / 19.29", "11.80 / 17.95", "18.53")}
        lines += [
            "",
            "**Branch and bound side by side** (same channel, same run): mean steps / mean bits "
            "(Elias delta of the heap index; Zeta in brackets), and the paper's figures:",
            "",
            "| I bits | " + " | ".join(have)
            + " | paper split-on-sample GPRS | paper dyadic GPRS | paper AS* steps |",
            "|---|" + "---|" * (len(have) + 3),
        ]
        for level in sorted({k[1] for k in chan if k[0] in have}):
            cells = []
            for m in have:
                r = chan.get((m, level))
                cells.append("" if r is None else f"{r['steps_mean']:.2f} / {r['gamma_bits_mean']:.2f} "
                             f"({r.get('zeta_bits_mean', 0):.2f})")
            pp = paper.get(level, ("", "", ""))
            lines.append(f"| {level:g} | " + " | ".join(cells) + f" | {pp[0]} | {pp[1]} | {pp[2]} |")
    dinf = [r for r in data["rows"] if r["family"] == "dinf"]
    if dinf:
        methods = list(dict.fromkeys(r["method"] for r in dinf))
        lines += [
            "",
            "**Fixed D_inf** (global samplers; Q = N(0, 2^(−2D)), so D_inf = D bits for every problem; "
            "theory E[steps] = exp(D_inf) for global GPRS and GRS):",
            "",
            "| D_inf bits | KL bits | " + " | ".join(f"{m} steps" for m in methods) + " | exp(D_inf) |",
            "|---|---|" + "---|" * len(methods) + "---|",
        ]
        for level in sorted({r["level_bits"] for r in dinf}):
            rr = {r["method"]: r for r in dinf if r["level_bits"] == level}
            ref = next(iter(rr.values()))
            cells = " | ".join(f"{rr[m]['steps_mean']:.2f}" if m in rr else "" for m in methods)
            lines.append(f"| {ref['dinf_bits_mean']:.2f} | {ref['kl_bits_mean']:.2f} | {cells} | "
                         f"{ref['theory_steps_global']:.2f} |")
    lines += ["", "![steps, bits and throughput](benchmarks/results/samplers.png)"]
    return "\n".join(lines)


CODELENGTH_COLS = [("pfr", "gamma"), ("pfr", "zeta"), ("gprs", "gamma"), ("gprs", "zeta"),
                   ("gprs_parallel", "zeta"), ("gprs_bb", "delta"), ("gprs_bb", "zeta"), ("orc", "fixed")]


def render_codelength(data) -> str:
    m = data["machine"]
    rows = data["rows"]
    lines = [
        f"Measured by `python benchmarks/codelength.py` ({m['cpu']}, JAX {m['jax']}): mean real "
        "payload bits per sample of a `.jrec` file (4,000 problems per point; 1,000 at 10-12 bits, "
        "400 above), fixed-KL family, Zeta budget `jrec.coding.zeta_budget(KL)` = max(KL, 1/2). "
        "ORC: kappa = ceil(KL) + 2 (approximate). Bold: at or below KL + log2(KL + 1) + 1.",
        "",
        "| KL bits | " + " | ".join(f"{a} {b}" for a, b in CODELENGTH_COLS)
        + " | KL+log2(KL+1)+1 | Li–El Gamal +4 |",
        "|---" * (len(CODELENGTH_COLS) + 3) + "|",
    ]
    for level in sorted({r["level_bits"] for r in rows}):
        rr = {(r["method"], r["code"]): r for r in rows if r["level_bits"] == level}
        ref = rr.get(("pfr", "zeta")) or next(iter(rr.values()))
        cells = []
        for k in CODELENGTH_COLS:
            r = rr.get(k)
            if r is None:
                cells.append("")
            elif r["bits_mean"] <= r["kl_plus_log_bits"]:
                cells.append(f"**{r['bits_mean']:.2f}**")
            else:
                cells.append(f"{r['bits_mean']:.2f}")
        lines.append(f"| {ref['kl_bits_mean']:.2f} | " + " | ".join(cells)
                     + f" | {ref['kl_plus_log_bits']:.2f} | {ref['li_el_gamal_bits']:.2f} |")
    lines += ["", "![codelength](benchmarks/results/codelength.png)"]
    return "\n".join(lines)


def render_scale(data) -> str:
    m = data["machine"]
    lines = [
        f"Measured by `python benchmarks/scale.py` ({m['cpu']}, {m['cores']} cores, JAX {m['jax']}): "
        "1-D Gaussian latents with KL ~ U(0.05, 8) bits; compiled executables (compile time apart); "
        "memory = XLA buffers of the compiled program. Empty vmap cells: skipped (its cost is batch x "
        "slowest problem).",
        "",
        "| sampler | batch | enc/s vmap | enc/s refill | refill speed-up | MB vmap | MB refill | "
        "mean steps | max steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["throughput"]:
        v = r.get("vmap_encodes_per_s")
        vmap = f"{v:,.0f}" if v else ""
        speedup = f"{r['refill_speedup']:.1f}x" if v else ""
        vmem = f"{r['vmap_mem_mb']:.1f}" if v else ""
        lines.append(
            f"| {r['method']} | {r['batch']:,} | {vmap} | {r['refill_encodes_per_s']:,.0f} | {speedup} | "
            f"{vmem} | {r['refill_mem_mb']:.1f} | {r['steps_mean']:.1f} | {r['steps_max']:,} |")
    d = data["devices"]
    lines += ["", f"**Devices** (`jrec.shard.encode`, gprs, batch {d[0]['batch']:,}, forced host devices "
              "on the same 2 cores: the point is identical results and the overhead; each forced device runs "
              "on its own thread, so from 2 devices on the second core is used too, which a single device "
              "of this build leaves mostly idle):", "",
              "| devices | enc/s | time vs 1 device | indices identical to 1 device |", "|---|---|---|---|"]
    for r in d:
        lines.append(f"| {r['devices']} | {r['encodes_per_s']:,.0f} | {r['overhead_vs_1_device']:.2f}x | "
                     f"{'yes' if r['identical_to_1_device'] else 'NO'} |")
    n = data["numpy_reference"]
    lines += ["", f"NumPy reference (pure-NumPy PFR loop, {n['batch']:,} problems): "
              f"{n['encodes_per_s']:,.0f} enc/s, mean steps {n['steps_mean']:.1f} ± {n['steps_se']:.1f} "
              f"(jrec pfr on the same problems: {n['jrec_steps_mean']:.1f}).",
              "", "![scale](benchmarks/results/scale.png)"]
    return "\n".join(lines)


def _image_ranges(names) -> str:
    """``["kodim01", "kodim02", "kodim03", "kodim07"]`` -> ``"kodim01-03, kodim07"``."""
    nums = sorted(int(n[len("kodim"):]) for n in names)
    runs, start = [], None
    for i, v in enumerate(nums):
        start = v if start is None else start
        if i + 1 == len(nums) or nums[i + 1] != v + 1:
            runs.append(f"kodim{start:02d}" + (f"-{v:02d}" if v != start else ""))
            start = None
    return ", ".join(runs)


def render_rd(data) -> str:
    m = data.get("machine", {})
    if isinstance(m, str):  # written by jrec-inr eval (a partial run): "cpu, N cores, OS"
        m = {"cpu": m.split(",")[0], "cores": m.split(",")[1].split()[0] if "," in m else "?"}
    per, base_rows = data["per_image"], data.get("baselines_per_image", [])
    rates = sorted({p["target_bpp"] for p in per})
    images = {g: {p["image"].split(".")[0] for p in per if p["target_bpp"] == g} for g in rates}
    common = set.intersection(*images.values()) if images else set()
    by_set = {}
    for g in rates:
        by_set.setdefault(_image_ranges(images[g]), []).append(f"{g:g}")
    commands = data.get("commands") or [data.get("command", "python benchmarks/rd_kodak.py")]
    lines = [
        "Measured by " + " and ".join(f"`{c}`" for c in commands) + f" on {m.get('cpu', '?')}, "
        f"{m.get('cores', '?')} cores (CPU only). Images (full resolution): "
        + "; ".join(f"{', '.join(gs)} bpp: {ims}" for ims, gs in by_set.items())
        + ". Each image is coded with a prior that never saw it (" + ", ".join(
            f"{name}: {_image_ranges({p['image'].split('.')[0] for p in per if p['model'] == name})}"
            for name in sorted({p["model"] for p in per})) + "). bpp = file size x 8 / pixels; "
        "baselines coded at the same bpp per image (Pillow).",
        "",
        "Encoder: the fitting code's version (`jrec_inr.codec.ENCODER_VERSION`; 1: `jnp.sin` and "
        "threefry noise, 2: `jrec_inr.fastmath`, 3: blocks send their greedy candidate, "
        "`CodecConfig.greedy`; ORC's sample before; 4: fine-tuning at a fraction of the fitting's "
        "learning rate, `CodecConfig.finetune_lr`), fitting steps + fine-tuning steps per coded block.",
        "",
        "| target bpp | model | encoder | images | bpp | PSNR dB | MS-SSIM | JPEG dB | WebP dB | "
        "JPEG 2000 dB | encode s | decode s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def add_rows(rows, base, label):  # one line per rate and encoder, newest encoder first
        pairs = sorted({(p["target_bpp"], _encoder_label(p)) for p in rows}, key=lambda t: t[1], reverse=True)
        for g, enc in sorted(pairs, key=lambda t: t[0]):  # (a stable sort keeps the encoder order)
            mine = [p for p in rows if p["target_bpp"] == g and _encoder_label(p) == enc]
            keys = {(p["image"], g) for p in mine}
            add_encoder_rows(mine, [b for b in base if (b["image"], b["target_bpp"]) in keys], label, enc)

    def add_encoder_rows(rows, base, label, enc):
        res, bases = rd_means(rows, base)
        for i, g in enumerate(res["target_bpp"]):
            kind = " / ".join(sorted({_model_kind(p) for p in rows if p["target_bpp"] == g}))

            def b(c):
                v = bases.get(c, {}).get("psnr-rgb", [None] * len(res["target_bpp"]))[i]
                return "–" if v is None else f"{v:.2f}"
            ms = res["ms-ssim-rgb"][i]
            lines.append(f"| {label(g)} | {kind} | {enc} | {res['num_images'][i]} | {res['bpp'][i]:.3f} | "
                         f"{res['psnr-rgb'][i]:.2f} | {'–' if ms is None else f'{ms:.4f}'} | {b('jpeg')} | "
                         f"{b('webp')} | {b('jpeg2000')} | {res['encoding_time'][i]:.0f} | "
                         f"{res['decoding_time'][i]:.2f} |")

    add_rows(per, base_rows, lambda g: f"{g:g}")
    # rates measured on more images: also their figures on the images all rates share
    wider = {g for g in rates if images[g] != common}
    if common and wider:
        pick = lambda x: x["target_bpp"] in wider and x["image"].split(".")[0] in common  # noqa: E731
        add_rows([p for p in per if pick(p)], [b for b in base_rows if pick(b)],
                 lambda g: f"{g:g} ({_image_ranges(common)})")
    lines += ["", "![rd](benchmarks/results/rd_kodak.png)"]
    return "\n".join(lines)


def render_fit_speed(data) -> str:
    m = data["machine"]
    lines = [f"Measured by `{data['command']}` on {m['cpu']}, {m['cores']} cores, JAX {m['jax']}: "
             f"one fitting step of {data['rows'][0]['patches']} patches (a Kodak image) x "
             f"{data['rows'][0]['pixels_per_step']} pixels, compiled, fastest of {data['reps']} alternating "
             "rounds.", "",
             "| model | hidden | weights | jnp.sin + jax.random.normal ms/step | jrec_inr.fastmath ms/step | "
             "speed-up |", "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['model']} | {r['hidden']} | {r['weights']} | "
                     f"{r['jax_seconds_per_step'] * 1e3:.1f} | {r['fast_seconds_per_step'] * 1e3:.1f} | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines)


def render_rd_modality(data) -> str:
    """The table of ``benchmarks/rd_modality.py``'s JSON (audio, protein or video)."""
    unit, metric = data["unit"], data["metric"]
    rk = unit.replace("/", "_per_")
    r = data["results"]
    rows = data["per_file"]
    files = sorted({x["file"] for x in rows})
    base = data.get("baselines", {})
    m = data.get("machine", {})
    machine = m if isinstance(m, str) else f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"
    cmds = " and ".join(f"`{c}`" for c in data.get("commands", []))
    mname = {"psnr": "PSNR dB", "rmsd": "RMSD A"}[metric]
    fmt = (lambda v: f"{v:.2f}") if metric == "psnr" else (lambda v: f"{v:.3g}")
    extra = f"{rk}_without_residue_table" in r
    head = ["target", "model", "files", unit] + (["without residue table"] if extra else []) + [mname]
    for c in base:
        head += [f"{c} {unit}", f"{c} {mname}"]
    head += ["encode s", "decode s"]
    lines = [f"Measured by {cmds} on {machine}. {len(files)} held-out files "
             f"({', '.join(f.rsplit('.', 1)[0] for f in files)}), protocol {data.get('protocol', {})}; "
             f"rate from the real file size; baselines coded by us at the matched rate on the same signals.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, t in enumerate(r["target_rate"]):
        models = sorted({x["model"] for x in rows if x["target_rate"] == t})
        cells = [f"{t:g}", ", ".join(models), str(r["num_files"][i]), f"{r[rk][i]:.2f}"]
        if extra:
            cells.append(f"{r[rk + '_without_residue_table'][i]:.2f}")
        cells.append(fmt(r[metric][i]))
        for b in base.values():
            cells += [f"{b[rk][i]:.2f}", fmt(b[metric][i])]
        cells += [f"{r['encoding_time'][i]:.0f}", f"{r['decoding_time'][i]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![rd_{data['modality']}](benchmarks/results/rd_{data['modality']}.png)"]
    return "\n".join(lines)


def markdown_files(root: str = ROOT) -> list[str]:
    """The files that may quote a table: README.md, then docs/*.md in name order."""
    docs = os.path.join(root, "docs")
    names = sorted(n for n in os.listdir(docs) if n.endswith(".md")) if os.path.isdir(docs) else []
    return [os.path.join(root, "README.md")] + [os.path.join(docs, n) for n in names]


def relocate(table: str, md_path: str, root: str = ROOT) -> str:
    """``table`` with its relative link targets (written from the repository root) made
    relative to the directory of ``md_path``, the file that quotes it."""
    up = os.path.relpath(root, os.path.dirname(os.path.abspath(md_path))).replace(os.sep, "/")
    if up == ".":
        return table
    return re.sub(r"\]\((?![a-z]+://)([^)\s]+)\)", lambda m: f"]({up}/{m.group(1)})", table)


def block_pattern(tag: str) -> str:
    """The regex of a tag's block; group 1 is the table between the marker lines."""
    return rf"<!-- {tag} -->\n(.*?)\n<!-- /{tag} -->"


def find_block(tag: str, texts: dict[str, str]) -> str:
    """The one path of ``texts`` (path -> text) that holds ``tag``'s block; SystemExit when
    none or several do (or one holds it twice)."""
    hits = [p for p, t in texts.items() for _ in re.finditer(re.escape(f"<!-- {tag} -->"), t)]
    if len(hits) != 1:
        where = ", ".join(os.path.relpath(p, ROOT) for p in hits) or "no file"
        raise SystemExit(f"<!-- {tag} --> appears {len(hits)} times ({where}): "
                         "it must be in exactly one of README.md and docs/*.md")
    if not re.search(block_pattern(tag), texts[hits[0]], flags=re.S):
        raise SystemExit(f"{os.path.relpath(hits[0], ROOT)}: <!-- {tag} --> has no <!-- /{tag} --> after it")
    return hits[0]


def _replace(text: str, tag: str, table: str) -> str:
    return re.sub(block_pattern(tag), lambda _: f"<!-- {tag} -->\n{table}\n<!-- /{tag} -->", text, flags=re.S)


# block tag, results/<name>.json, renderer
TABLES = (("BENCH", "samplers", render), ("CODELENGTH", "codelength", render_codelength),
          ("SCALE", "scale", render_scale), ("RD", "rd_kodak", render_rd),
          ("FITSPEED", "fit_speed", render_fit_speed), ("RD_AUDIO", "rd_audio", render_rd_modality),
          ("RD_PROTEIN", "rd_protein", render_rd_modality), ("RD_VIDEO", "rd_video", render_rd_modality))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    res = os.path.join(HERE, "results")
    tables = {}
    for tag, name, fn in TABLES:
        path = os.path.join(res, name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                tables[tag] = fn(json.load(f))
    if not a.write:
        print("\n\n".join(tables.values()))
        return
    texts = {}
    for path in markdown_files():
        with open(path) as f:
            texts[path] = f.read()
    where = {tag: find_block(tag, texts) for tag in tables}  # check every tag before writing
    for tag, table in tables.items():
        texts[where[tag]] = _replace(texts[where[tag]], tag, relocate(table, where[tag]))
    for path in sorted(set(where.values())):
        with open(path, "w") as f:
            f.write(texts[path])


if __name__ == "__main__":
    main()
