"""Rate-distortion evaluation of the codec on files of any modality (audio, protein, ...).

:func:`evaluate_files` compresses every file at every rate with a model that never saw it,
writes the ``.jrec`` file, reads it back, decodes it, checks that the decoder reproduces
the encoder's reconstruction bit for bit, measures the modality's metrics and codes the
same signal with the modality's baselines at the achieved rate. The JSON it writes is
rewritten after every file (a stopped run resumes: rows of the same model digest and
encoder settings are kept). :func:`plot` draws our points, the baselines' and the
published curves of ``shared/reference/published_rd.json``.

(Images have their own harness with Kodak's folds and Pillow baselines,
:func:`jrec_inr.cli.evaluate`, whose JSON the README's image table reads.)
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

__all__ = ["evaluate_files", "plot", "summarise", "published", "PUBLISHED_KEYS"]

#: The key of each modality's curves in ``published_rd.json`` and its (rate, metric) fields.
PUBLISHED_KEYS = {"audio": ("librispeech_kbps", "kbps", "psnr"),
                  "protein": ("protein_bits_per_residue", "bits_per_residue", "rmsd"),
                  "video": ("ucf101_bpp", "bpp", "psnr")}


def published(modality: str) -> dict:
    """``{name: (rates, values)}`` of the published curves for ``modality`` (empty if the
    reference file is not beside the project)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "shared", "reference", "published_rd.json")
    if modality not in PUBLISHED_KEYS or not os.path.exists(path):
        return {}
    key, rk, mk = PUBLISHED_KEYS[modality]
    with open(path) as f:
        section = json.load(f).get(key, {})
    out = {}
    for name, entry in section.items():
        if not isinstance(entry, dict) or mk not in entry:
            continue
        key = next((k for k in entry if k == rk or k.startswith(rk + "_")), None)  # Foldcomp: "..._backbone"
        if key is None:
            continue
        label = name if key == rk else f"{name}, {key[len(rk) + 1:]}"
        rates, values = entry[key], entry[mk]
        out[label] = (rates, values) if isinstance(rates, list) else ([rates], [values])
    return out


def _rate_key(unit: str) -> str:
    return unit.replace("/", "_per_")


def evaluate_files(files, rates, modality: str, *, cfg=None, models=None, read_options=None, out=None,
                   plot_path=None, baselines=True, time_budget=None, progress=False, log=print,
                   command=None, extra=None) -> dict:
    """Code ``files`` at each of ``rates`` (in the modality's unit); see the module doc.

    Args:
      files: paths.
      rates: target rates; each picks the bundled model of that rate unless ``models``
        maps it to a Model or a list of them (the first that did not see a file codes it).
      modality: ``"audio"``, ``"protein"``, ... (:mod:`jrec_inr.modalities`).
      cfg: the encoder's :class:`~jrec_inr.codec.CodecConfig`.
      read_options: the modality's reading options (``duration=3.0``, ``residues=96``), or
        a function of the path returning them (a protocol whose crop depends on the file).
      out, plot_path: JSON and PNG paths.
      baselines: code each signal with the modality's baselines at the achieved rate.
      time_budget: seconds after which no new file is started.
    """
    from jrec_inr import codec, data, modalities
    from jrec_inr.cli import _machine, held_out_model

    t_start = time.perf_counter()
    mod = modalities.get(modality)
    cfg = codec.default_config(mod.name) if cfg is None else cfg
    encoder = codec.encoder_settings(cfg)
    options_of = read_options if callable(read_options) else (lambda _p, o=dict(read_options or {}): o)
    rows, base = [], []
    if out and os.path.exists(out):
        with open(out) as f:
            old = json.load(f)
        if old.get("modality") == mod.name:
            rows, base = old.get("per_file", []), old.get("baselines_per_file", [])
    models = models or {}
    chosen = {r: {os.path.basename(p): held_out_model(models.get(r) or codec.select_model(r, mod.name),
                                                      os.path.basename(p)) for p in files} for r in rates}
    stopped = False
    for r in rates:
        for path in files:
            name = os.path.basename(path)
            model = chosen[r][name]
            digest = model.digest()
            read_options = dict(options_of(path))
            if any(x["file"] == name and x["target_rate"] == r and x["model_digest"] == digest
                   and x["encoder"] == encoder and x.get("read_options") == read_options for x in rows):
                continue
            if time_budget is not None and time.perf_counter() - t_start > time_budget:
                stopped = True
                break
            signal = mod.read(path, **read_options)
            res = codec.compress(signal, model, cfg, progress=progress)
            with tempfile.TemporaryDirectory() as tmp:
                f = os.path.join(tmp, "x.jrec")
                data.atomic_write(f, res.data)
                size = os.path.getsize(f)
                with open(f, "rb") as fh:
                    dec = codec.decompress(fh.read(), model)
            if not np.array_equal(dec.values, res.signal.values):
                raise RuntimeError(f"{name}: the decoded signal differs from the encoder's reconstruction")
            quality = mod.metrics(signal, dec)
            row = {"file": name, "modality": mod.name, "target_rate": r, "unit": mod.unit,
                   "rate": mod.rate(size, signal), **quality, "bytes": size,
                   "model": model.name, "model_digest": digest, "encoder": encoder,
                   "read_options": read_options, "points": res.stats["points"],
                   "patches": res.stats["patches"], "blocks": res.stats["blocks"],
                   "encoding_time": res.stats["encode_seconds"], "fit_seconds": res.stats["fit_seconds"],
                   "decoding_time": dec.info["decode_seconds"],
                   "fit_kl_bits_per_block": res.stats["fit_kl_bits_per_block"]}
            if mod.name == "protein":  # the residue table's bits apart from the coordinates'
                table = mod.residue_bytes(signal)
                row["residue_table_bytes"] = table
                row["rate_without_residue_table"] = mod.rate(size - table, signal)
            if command is not None:
                row["command"] = command
            rows = [x for x in rows if (x["file"], x["target_rate"]) != (name, r)] + [row]
            base = [b for b in base if (b["file"], b["target_rate"]) != (name, r)]
            log(f"{name} @ {r:g} {mod.unit}: {row['rate']:.3f} {mod.unit}, {mod.metric} "
                f"{row[mod.metric]:.4f}, encode {row['encoding_time']:.0f} s, "
                f"decode {row['decoding_time']:.2f} s")
            if baselines:
                matched = row.get("rate_without_residue_table", row["rate"])
                for b in mod.baselines(signal, matched):
                    b.update(file=name, target_rate=r)
                    base.append(b)
            result = summarise(rows, base, mod, stopped=False, extra={"machine": _machine(), **(extra or {})})
            if out:
                data.atomic_write(out, json.dumps(result, indent=1, default=_json_default).encode())
        if stopped:
            break
    result = summarise(rows, base, mod, stopped=stopped, extra={"machine": _machine(), **(extra or {})})
    if out:
        data.atomic_write(out, json.dumps(result, indent=1, default=_json_default).encode())
    if plot_path:
        plot(plot_path, result)
    return result


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def summarise(rows, base, mod, *, stopped=False, extra=None) -> dict:
    """The JSON of :func:`evaluate_files`: means per target rate of ours and each baseline."""
    rk = _rate_key(mod.unit)
    targets = sorted({r["target_rate"] for r in rows})
    res = {"target_rate": targets, rk: [], mod.metric: [], "encoding_time": [], "decoding_time": [],
           "num_files": []}
    for t in targets:
        rs = [r for r in rows if r["target_rate"] == t]
        res[rk].append(float(np.mean([r["rate"] for r in rs])))
        res[mod.metric].append(float(np.mean([r[mod.metric] for r in rs])))
        res["encoding_time"].append(float(np.mean([r["encoding_time"] for r in rs])))
        res["decoding_time"].append(float(np.mean([r["decoding_time"] for r in rs])))
        res["num_files"].append(len(rs))
    if any("rate_without_residue_table" in r for r in rows):
        res[rk + "_without_residue_table"] = [
            float(np.mean([r["rate_without_residue_table"] for r in rows if r["target_rate"] == t]))
            for t in targets]
    baselines = {}
    for c in sorted({b["codec"] for b in base}):
        bs = [b for b in base if b["codec"] == c]
        key = mod.unit if mod.unit in bs[0] else "kbps"
        baselines[c] = {"target_rate": targets,
                        rk: [float(np.mean([b[key] for b in bs if b["target_rate"] == t])) for t in targets],
                        mod.metric: [float(np.mean([b[mod.metric] for b in bs if b["target_rate"] == t]))
                                     for t in targets]}
    out = {"name": f"jrec-combiner-{mod.name}", "modality": mod.name, "unit": mod.unit, "metric": mod.metric,
           "results": res, "baselines": baselines, "per_file": rows, "baselines_per_file": base,
           "time_budget_hit": stopped}
    commands = list(dict.fromkeys(r["command"] for r in rows if "command" in r))
    if commands:
        out["commands"] = commands
    return {**out, **(extra or {})}


def plot(path, result: dict) -> None:
    """Our mean points, the baselines' and the published curves (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jrec_inr import data

    mod, unit, metric = result["modality"], result["unit"], result["metric"]
    rk = _rate_key(unit)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    r = result["results"]
    ax.plot(r[rk], r[metric], "o-", color="C3", lw=2, label="jrec COMBINER (ours, held-out files)")
    if f"{rk}_without_residue_table" in r:
        ax.plot(r[f"{rk}_without_residue_table"], r[metric], "o--", color="C3", mfc="none",
                label="jrec COMBINER, without the residue table")
    own, other = ["C0", "C1", "C2", "C8", "C9", "C5"], ["C4", "C6", "C7"]  # (C3 is ours)
    for i, (c, b) in enumerate(sorted(result.get("baselines", {}).items())):
        ax.plot(b[rk], b[metric], "s--", color=own[i % len(own)], label=f"{c} (ours, matched rate)")
    for i, (name, (x, y)) in enumerate(sorted(published(mod).items())):
        ax.plot(x, y, "^:", color=other[i % len(other)], alpha=0.8, label=f"{name} (published)")
    ax.set_xlabel(unit)
    ax.set_ylabel({"psnr": "PSNR (dB)", "rmsd": "RMSD (angstrom)"}.get(metric, metric))
    if metric == "rmsd":
        ax.set_yscale("log")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    m = result.get("machine", "")
    if not isinstance(m, str):
        m = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('backend', '')}"
    ax.set_title(f"{mod}: rate-distortion on held-out files ({m})", fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    data.atomic_write(path, buf.getvalue())
