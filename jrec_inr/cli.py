"""``jrec-inr``: compress / decompress images, audio, protein structures and video with the
COMBINER / RECOMBINER codec, train priors, evaluate.

Usage::

    jrec-inr compress [FILE] [OUT.jrec] --rate R       # default FILE: the bundled demo crop
    jrec-inr compress speech.flac speech.jrec --rate 10 --duration 3     # kbps
    jrec-inr compress 1abc.pdb 1abc.jrec --rate 35 --residues 96          # bits per residue
    jrec-inr compress clip.mp4 clip.jrec --rate 0.25 --frames 24 --crop 240 --resize 128  # bpp
    jrec-inr decompress IN.jrec OUT.png|OUT.flac|OUT.wav|OUT.pdb|OUT.mkv|OUT.mp4
    jrec-inr train-prior --rate 10 --modality audio --out model.npz --files a.flac b.flac ...
    jrec-inr eval FILE ... --rate R ... --out rd.json --plot rd.png --baselines

The modality comes from the file's suffix (``--modality`` overrides it) and picks the
bundled model of the requested rate. Errors (unreadable, empty or truncated inputs,
unsupported formats, unsupported rates, corrupt or truncated ``.jrec`` files, a file from
another model or modality) are reported in one line on stderr with exit status 2; output
files are written through a temporary file and a rename, so a failed run leaves nothing
half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time

import numpy as np

__all__ = ["main", "evaluate"]


def _add_coding_options(q) -> None:
    """The encoder's options (a :class:`~jrec_inr.codec.CodecConfig`; read back by
    :func:`_codec_config`), shared by ``compress``, ``eval`` and ``benchmarks/rd_kodak.py``."""
    q.add_argument("--steps", type=int, help="fitting steps before coding (default: "
                   "jrec_inr.codec.CodecConfig's)")
    q.add_argument("--finetune-steps", type=int, help="fine-tuning steps after each block (default: "
                   "CodecConfig's)")
    q.add_argument("--finetune-lr", type=float, help="learning-rate multiplier of the fine-tuning "
                   "steps (default: CodecConfig's)")
    q.add_argument("--seed", type=int, default=0, help="seed of the shared key (stored in the file)")
    q.add_argument("--sample", action="store_true", help="send ORC's sample of each block's posterior "
                   "instead of its largest-ratio candidate (the encoder before version 3)")


def _codec_config(args, modality: str = "image"):
    from jrec_inr.codec import default_config

    given = {"fit_steps": args.steps, "finetune_steps": args.finetune_steps,
             "finetune_lr": args.finetune_lr, "seed": args.seed}
    cfg = default_config(modality)._replace(**{k: v for k, v in given.items() if v is not None})
    return cfg._replace(greedy=False) if args.sample else cfg


def _model(args, modality: str = "image"):
    from jrec_inr.codec import CodecError, select_model
    from jrec_inr.prior import load_model

    if args.model:
        model = load_model(args.model)
        if model.modality != modality:
            raise CodecError(f"model {args.model} codes {model.modality}, the input is {modality}")
        return model
    rate = args.rate if args.rate is not None else args.bpp
    if rate is None:
        if modality != "image":
            raise CodecError(f"give the rate of the {modality} model to use with --rate")
        rate = 0.3
    return select_model(rate, modality)


def cmd_compress(args) -> int:
    from jrec_inr import codec, data

    mod = _modality_of(args, args.input)
    signal = mod.read(args.input, **_read_options(args))
    model = _model(args, mod.name)
    if not args.quiet:
        print(f"{args.input}: {mod.describe(signal)}, model {model.name}", file=sys.stderr)
    res = codec.compress(signal, model, _codec_config(args, mod.name), progress=not args.quiet)
    data.atomic_write(args.out, res.data)
    if args.recon:
        mod.write(args.recon, res.signal)
    s = res.stats
    metric = mod.metric
    quality = f"PSNR {s['psnr']:.2f} dB" if metric == "psnr" else f"{metric.upper()} {s[metric]:.4f}"
    quality += " A" if metric == "rmsd" else ""
    layout = f"{s['patches']} patches x {s['blocks']} blocks"
    if "units" in s:  # a hierarchical prior: every level's units and blocks
        u, b = s["units"], s["blocks_per_level"]
        layout = (f"{u['signal']} x {b['signal']} signal + {u['group']} x {b['group']} group + "
                  f"{u['patch']} x {b['patch']} patch blocks")
    print(f"{args.out}: {s['bytes']} bytes, {s['rate']:.4f} {mod.unit}, {quality} "
          f"(model {s['model']}, {layout} of {s['kappa']} bits), encoded in {s['encode_seconds']:.1f} s")
    if args.json:
        data.atomic_write(args.json, json.dumps(s, indent=2).encode())
    return 0


_OUT_SUFFIX = {"image": (".png",), "audio": (".flac", ".wav"), "protein": (".pdb",),
               "video": (".mkv", ".mp4")}


def cmd_decompress(args) -> int:
    from jrec_inr import codec, modalities
    from jrec_inr.codec import CodecError
    from jrec_inr.prior import load_model

    with open(args.input, "rb") as f:
        blob = f.read()
    kind = codec.read_meta(blob)["modality"]
    suffixes = _OUT_SUFFIX.get(kind, ())
    if not args.out.lower().endswith(suffixes):
        raise CodecError(f"{args.input} holds {kind}; write it to a {' or '.join(suffixes)} file")
    model = load_model(args.model) if args.model else None
    out = codec.decompress(blob, model)
    mod = modalities.get(kind)
    mod.write(args.out, out)
    print(f"{args.out}: {mod.describe(out)}, model {out.info['model']}, "
          f"decoded in {out.info['decode_seconds']:.2f} s")
    return 0


def _read_options(args) -> dict:
    """The modality-specific reading options given on the command line."""
    opts = {"start": getattr(args, "start", None), "duration": getattr(args, "duration", None),
            "chain": getattr(args, "chain", None), "residues": getattr(args, "residues", None),
            "first_frame": getattr(args, "first_frame", None), "frames": getattr(args, "frames", None),
            "crop": getattr(args, "crop", None), "size": getattr(args, "resize", None)}
    return {k: v for k, v in opts.items() if v is not None}


def _modality_of(args, path):
    from jrec_inr import modalities

    return modalities.get(args.modality) if getattr(args, "modality", None) else modalities.for_path(path)


def _sides(text: str, option: str, rank: int) -> tuple[int, ...]:
    """``"24x16x16"`` (or one side for every axis) as a tuple of ``rank`` positive ints."""
    try:
        sides = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: {option} {text!r}: one side or sides joined by x (24x16x16)") from None
    sides = sides * rank if len(sides) == 1 else sides
    if len(sides) != rank or min(sides) < 1:
        raise SystemExit(f"error: {option} {text!r} for a signal of rank {rank}")
    return sides


def cmd_train_prior(args) -> int:
    from jrec_inr import modalities, prior
    from jrec_inr.fit import FitConfig
    from jrec_inr.model import Arch

    files = list(args.files or []) + list(args.images or [])
    if not files:
        raise SystemExit("error: give the training files (--files, or --images for images)")
    mod = modalities.get(args.modality) if args.modality else modalities.for_path(files[0])
    rate = args.rate if args.rate is not None else args.bpp
    if rate is None:
        raise SystemExit(f"error: give the target rate in {mod.unit} (--rate)")
    patch = _sides(args.patch, "--patch", mod.rank)
    group = None if args.group is None else _sides(args.group, "--group", mod.rank)
    if (group is None) != (args.window is None) or (group is None) != (args.num_signals is None):
        raise SystemExit("error: a hierarchical prior needs --group, --window and --num-signals together")
    patch = patch[0] if mod.name == "image" and patch[0] == patch[1] else patch
    channels = args.channels or {"image": 3, "audio": 1, "protein": 3, "video": 3}.get(mod.name, 1)
    try:
        arch = Arch(hidden=args.hidden, depth=args.depth, num_freqs=args.num_freqs, patch=patch,
                    channels=channels, linear=args.linear, pe_grid=args.pe_grid,
                    pe_channels=args.pe_channels).check()
    except ValueError as e:
        print(f"jrec-inr train-prior: error: {e}", file=sys.stderr)
        return 2
    exclude = set(args.exclude or [])
    paths = [p for p in files if os.path.basename(p).split(".")[0] not in exclude]
    if not paths:
        raise SystemExit("error: no training files left after --exclude")
    signals = [mod.read(p, **_read_options(args)) for p in paths]
    bits_per_point = mod.bits_per_point(rate, signals[0].info)
    cfg = prior.TrainConfig(bpp=bits_per_point, kappa=args.kappa, num_patches=args.num_patches,
                            em_iters=args.em_iters, first_steps=args.first_steps, steps=args.steps,
                            seed=args.seed, beta_init=args.beta_init, cross_patch=args.cross_patch,
                            shared_beta=args.shared_beta,
                            fit=FitConfig(lr=args.lr, beta_factor=args.beta_factor, mix_lr=args.mix_lr,
                                          pixels_per_step=args.points_per_step,
                                          stratified=args.stratified))
    grids = [g for s in signals for g in mod.training_grids(s, arch)]
    if not grids:
        raise SystemExit(f"error: no training windows in the files (each needs at least {arch.patch_shape})")
    units = None
    try:
        if group is None:
            patches = prior.training_patches(None, arch.patch_shape, cfg.num_patches, cfg.seed, grids=grids)
        else:
            window = _sides(args.window, "--window", mod.rank)
            patches, units = prior.training_signals(grids, window, arch.patch_shape, group, args.num_signals,
                                                    cfg.seed)
            cfg = cfg._replace(num_patches=int(patches.shape[0]))
    except ValueError as e:
        raise SystemExit(f"error: {e} (lower --num-patches / --num-signals)") from None
    t0 = time.perf_counter()
    recipe = {"command": "jrec-inr " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "images" if mod.name == "image" else "files": [os.path.basename(p) for p in paths],
              "excluded": sorted(exclude), "machine": _machine(), "modality": mod.name,
              "rate": rate, "unit": mod.unit}
    default_name = f"bpp{rate:g}" if mod.name == "image" else f"{mod.name}-{rate:g}"
    model = prior.train_prior(patches, arch, cfg, name=args.name or default_name,
                              checkpoint=args.checkpoint, progress=not args.quiet, recipe=recipe,
                              modality=mod.name, rate=None if mod.name == "image" else float(rate),
                              units=units, group=group)
    model.recipe["train_seconds"] = round(time.perf_counter() - t0, 1)
    prior.save_model(args.out, model)
    blocks = f"{model.num_blocks} blocks"
    if model.upper is not None:
        bg, bs = model.upper.num_blocks
        blocks = f"{model.num_blocks} patch, {bg} group and {bs} signal blocks"
    print(f"{args.out}: {mod.name} model {model.name}, {model.num_weights} weights in {blocks} "
          f"of ~{model.kappa} bits, {model.recipe['train_seconds']} s")
    return 0


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def evaluate(images, bpps, *, cfg=None, out=None, plot=None, baselines=False, models=None,
             time_budget=None, progress=False, log=print, extra=None, command=None) -> dict:
    """Compress, write, read back and decode every image at every bit rate; CompressAI-style JSON.

    Args:
      images: image paths.
      bpps: requested bit rates (each picks a bundled model unless ``models`` maps it).
      cfg: the encoder's :class:`~jrec_inr.codec.CodecConfig` (default: its defaults);
        every row records its :func:`~jrec_inr.codec.encoder_settings`.
      out: JSON path, rewritten after every image (runs can be resumed: finished
        ``(image, bpp)`` pairs found in it are kept if they were coded with the same model
        (its digest) and encoder settings; the run's other images and rates are coded
        again, and each replaces its older row and baselines once it is done).
      plot: RD plot path (PNG).
      baselines: also code each image with JPEG, WebP and JPEG 2000 at the achieved bpp.
      time_budget: seconds after which no new image is started.
      models: optional ``{bpp: Model or [Model, ...]}``: each image is coded with the first
        of its rate's models that did not see it in training (cross-validation folds);
        an image every candidate saw is an error (no figure from a prior that saw it).
      extra: top-level fields added to every JSON written (e.g. a benchmark's machine), so
        that a run stopped part-way still records them.
      command: the command line of this run, recorded in every row it codes; the JSON's
        ``commands`` lists those of the rows it holds (a resumed run that recodes every row
        of an earlier one drops that one's command).
    """
    from jrec_inr import codec, data, metrics
    from jrec_inr.codec import CodecConfig

    t_start = time.perf_counter()
    cfg = CodecConfig() if cfg is None else cfg
    encoder = codec.encoder_settings(cfg)
    rows, base = [], []
    if out and os.path.exists(out):
        with open(out) as f:
            old = json.load(f)
        rows, base = old.get("per_image", []), old.get("baselines_per_image", [])
    models = models or {}
    stopped = False
    chosen = {}  # every choice made (and checked) before any coding
    for bpp in bpps:
        candidates = models.get(bpp) or codec.select_model(bpp)  # (loads the bundled models once)
        chosen[bpp] = {os.path.basename(p): held_out_model(candidates, os.path.basename(p))
                       for p in images}
    digests = {bpp: {name: m.digest() for name, m in chosen[bpp].items()} for bpp in bpps}
    for bpp in bpps:
        done = {(r["image"], bpp) for r in rows if r["target_bpp"] == bpp and r["image"] in chosen[bpp]
                and r.get("model_digest") == digests[bpp][r["image"]] and r.get("encoder") == encoder}
        for path in images:
            name = os.path.basename(path)
            if (name, bpp) in done:
                continue
            model, digest = chosen[bpp][name], digests[bpp][name]
            if time_budget is not None and time.perf_counter() - t_start > time_budget:
                stopped = True
                break
            img = data.load_image(path)
            res = codec.compress(img, model, cfg, progress=progress)
            with tempfile.TemporaryDirectory() as tmp:
                f = os.path.join(tmp, "x.jrec")
                data.atomic_write(f, res.data)
                size = os.path.getsize(f)
                with open(f, "rb") as fh:
                    dec, info = codec.decompress(fh.read(), model)
            if not np.array_equal(dec, res.image):
                raise RuntimeError(f"{name}: decoded image differs from the encoder's reconstruction")
            orig = data.to_uint8(img)
            row = {"image": name, "target_bpp": bpp, "model": model.name, "model_digest": digest,
                   "encoder": encoder,
                   "linear": model.arch.linear, "pe_grid": model.arch.pe_grid,
                   "cross_patch": model.cross_patch,
                   "bpp": 8 * size / (img.shape[0] * img.shape[1]), "psnr": metrics.psnr(orig, dec),
                   "ms_ssim": metrics.ms_ssim(orig, dec), "encoding_time": res.stats["encode_seconds"],
                   "decoding_time": info["decode_seconds"], "fit_seconds": res.stats["fit_seconds"],
                   "blocks": res.stats["blocks"], "patches": res.stats["patches"],
                   "fit_kl_bits_per_block": res.stats["fit_kl_bits_per_block"]}
            if command is not None:
                row["command"] = command
            # the image's rows of another model or encoder (and their baselines) are replaced now,
            # not when the run starts: a run cut short keeps the older figures of the rest
            rows = [r for r in rows if (r["image"], r["target_bpp"]) != (name, bpp)] + [row]
            base = [b for b in base if (b["image"], b["target_bpp"]) != (name, bpp)]
            log(f"{name} @ {bpp:g}: {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB, "
                f"encode {row['encoding_time']:.0f} s, decode {row['decoding_time']:.2f} s")
            if baselines:
                for c in ("jpeg", "webp", "jpeg2000"):
                    b = metrics.match_bpp(orig, c, row["bpp"])
                    b.update(image=name, target_bpp=bpp)
                    base.append(b)
            result = _summary(rows, base, cfg, stopped=False, extra=extra)
            if out:
                data.atomic_write(out, json.dumps(result, indent=1).encode())
        if stopped:
            break
    result = _summary(rows, base, cfg, stopped=stopped, extra=extra)
    if out:
        data.atomic_write(out, json.dumps(result, indent=1).encode())
    if plot:
        published = _published()
        metrics.rd_plot(plot, rows, base, published, title="Kodak" if published else "")
    return result


def held_out_model(candidates, image_name: str):
    """The first of ``candidates`` (a Model or a list) whose training images exclude
    ``image_name`` (the model recipe's ``images``); ``ModelError`` if every one saw it."""
    from jrec_inr.prior import Model, ModelError

    candidates = [candidates] if isinstance(candidates, Model) else list(candidates)
    for m in candidates:
        if image_name not in m.recipe.get("images", []) + m.recipe.get("files", []):
            return m
    raise ModelError(f"{image_name}: every candidate model ({', '.join(m.name for m in candidates)}) "
                     "was trained on it; train a fold without it (train-prior --exclude)")


def _published():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "shared", "reference", "published_rd.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f).get("kodak", {})


def rd_means(rows, base) -> tuple[dict, dict]:
    """Means per target bpp of :func:`evaluate`'s per-image rows (CompressAI-style
    ``results``) and of its baseline rows (``{codec: {"target_bpp", "bpp", "psnr-rgb"}}``)."""
    groups = sorted({r["target_bpp"] for r in rows})
    res = {k: [] for k in ("target_bpp", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
                           "decoding_time", "num_images")}
    for g in groups:
        rs = [r for r in rows if r["target_bpp"] == g]
        ms = [r["ms_ssim"] for r in rs if r["ms_ssim"] is not None]
        res["target_bpp"].append(g)
        res["bpp"].append(float(np.mean([r["bpp"] for r in rs])))
        res["psnr-rgb"].append(float(np.mean([r["psnr"] for r in rs])))
        res["ms-ssim-rgb"].append(float(np.mean(ms)) if ms else None)
        res["encoding_time"].append(float(np.mean([r["encoding_time"] for r in rs])))
        res["decoding_time"].append(float(np.mean([r["decoding_time"] for r in rs])))
        res["num_images"].append(len(rs))
    baselines = {}
    for c in sorted({b["codec"] for b in base}):
        bs = [b for b in base if b["codec"] == c]
        baselines[c] = {
            "target_bpp": groups,
            "bpp": [float(np.mean([b["bpp"] for b in bs if b["target_bpp"] == g])) for g in groups],
            "psnr-rgb": [float(np.mean([b["psnr"] for b in bs if b["target_bpp"] == g])) for g in groups]}
    return res, baselines


def _summary(rows, base, cfg, stopped, extra=None) -> dict:
    """The JSON :func:`evaluate` writes; ``extra``'s fields are added last (they win)."""
    res, baselines = rd_means(rows, base)
    out = {"name": "jrec-combiner", "description": f"COMBINER (Bayesian SIREN + ORC), {cfg.fit_steps} fit "
           f"steps, {cfg.finetune_steps} fine-tuning steps per block (this run; each row records its "
           "encoder settings)", "machine": _machine(),
           "results": res, "per_image": rows, "baselines_per_image": base, "time_budget_hit": stopped}
    commands = list(dict.fromkeys(r["command"] for r in rows if "command" in r))  # (in row order)
    if commands:
        out["commands"] = commands
    if base:
        out["baselines"] = baselines
    return {**out, **(extra or {})}


def cmd_eval(args) -> int:
    from jrec_inr import rd
    from jrec_inr.prior import load_model

    mod = _modality_of(args, args.images[0])
    if mod.name != "image":
        rates = args.rate or []
        if not rates:
            raise SystemExit(f"error: give the rates in {mod.unit} with --rate")
        if args.model and len(rates) != 1:
            raise SystemExit("error: --model goes with a single --rate")
        models = {rates[0]: load_model(args.model)} if args.model else None
        res = rd.evaluate_files(args.images, rates, mod.name, cfg=_codec_config(args, mod.name),
                                models=models, read_options=_read_options(args), out=args.out,
                                plot_path=args.plot,
                                baselines=args.baselines, time_budget=args.time_budget,
                                progress=not args.quiet,
                                command="jrec-inr " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        r = res["results"]
        rk = mod.unit.replace("/", "_per_")
        for i, t in enumerate(r["target_rate"]):
            print(f"{t:g} {mod.unit}: {r['num_files'][i]} files, {r[rk][i]:.3f} {mod.unit}, "
                  f"{mod.metric} {r[mod.metric][i]:.4f}, encode {r['encoding_time'][i]:.0f} s, "
                  f"decode {r['decoding_time'][i]:.2f} s")
        return 0
    if args.rate:
        args.bpp = args.rate
    models = {args.bpp[0]: load_model(args.model)} if args.model else None
    if args.model and len(args.bpp) != 1:
        raise SystemExit("error: --model goes with a single --bpp")
    res = evaluate(args.images, args.bpp, cfg=_codec_config(args), out=args.out, plot=args.plot,
                   baselines=args.baselines, models=models, time_budget=args.time_budget,
                   progress=not args.quiet)
    r = res["results"]
    for i, g in enumerate(r["target_bpp"]):
        print(f"bpp {g:g}: {r['num_images'][i]} images, {r['bpp'][i]:.4f} bpp, {r['psnr-rgb'][i]:.2f} dB, "
              f"encode {r['encoding_time'][i]:.0f} s, decode {r['decoding_time'][i]:.2f} s")
    return 0


def _add_read_options(q) -> None:
    """Options that choose what of a file is coded (audio window, protein chain, video window)."""
    q.add_argument("--start", type=float, help="audio: first second to code (default 0)")
    q.add_argument("--duration", type=float, help="audio: seconds to code (default: to the end)")
    q.add_argument("--chain", help="protein: chain id (default: the first protein chain)")
    q.add_argument("--residues", type=int, help="protein: code the first N residues (default: all)")
    q.add_argument("--first-frame", type=int, help="video: first frame to code (default 0)")
    q.add_argument("--frames", type=int, help="video: number of frames to code (default: to the end)")
    q.add_argument("--crop", help="video: centre crop HxW (or one side for a square) before resizing")
    q.add_argument("--resize", help="video: resize the (cropped) frames to HxW (or one side)")


def _parser() -> argparse.ArgumentParser:
    from jrec_inr.data import demo_image

    p = argparse.ArgumentParser(prog="jrec-inr", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("compress", help="image, audio, protein structure or video -> .jrec")
    c.add_argument("input", nargs="?", default=demo_image(),
                   help="image, audio file, PDB / mmCIF structure or video clip (default: the bundled "
                        "demo crop)")
    c.add_argument("out", nargs="?", default="demo.jrec", help="output .jrec file")
    c.add_argument("--rate", type=float, help="target rate in the modality's unit: bpp (images, default "
                   "0.3), kbps (audio), bits per residue (proteins), bits per frame pixel (video); "
                   "selects the bundled model")
    c.add_argument("--bpp", type=float, help="images: target bits per pixel (same as --rate)")
    c.add_argument("--modality", help="image, audio, protein or video (default: from the file's suffix)")
    c.add_argument("--model", help="model .npz instead of the bundled one for --rate")
    c.add_argument("--recon", help="also write the reconstruction (PNG, FLAC / WAV, PDB, MKV / MP4)")
    _add_read_options(c)
    c.add_argument("--json", help="write the encoder's statistics (JSON)")
    _add_coding_options(c)
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".jrec -> PNG, FLAC / WAV, PDB or MKV (FFV1, lossless) / "
                       "MP4 (H.264, for viewing)")
    d.add_argument("input")
    d.add_argument("out")
    d.add_argument("--model", help="model .npz (default: the bundled model named in the file)")
    d.set_defaults(func=cmd_decompress)

    t = sub.add_parser("train-prior", help="learn a prior and block grouping by EM")
    t.add_argument("--rate", type=float, help="target rate in the modality's unit (bpp, kbps, bits/residue)")
    t.add_argument("--bpp", type=float, help="target bits per pixel (images; same as --rate)")
    t.add_argument("--out", required=True, help="model .npz")
    t.add_argument("--files", nargs="+", help="training files (images, audio, structures)")
    t.add_argument("--images", nargs="+", help="training images (same as --files)")
    t.add_argument("--modality", help="image, audio, protein or video (default: from the files' suffix)")
    t.add_argument("--exclude", nargs="*", help="file stems to leave out (e.g. kodim01)")
    t.add_argument("--channels", type=int,
                   help="output channels (default: 3 image, 1 audio, 3 protein, 3 video)")
    t.add_argument("--points-per-step", type=int, default=1024,
                   help="grid points drawn per patch and fitting step")
    t.add_argument("--stratified", action="store_true", help="stratified draws of those points")
    _add_read_options(t)
    t.add_argument("--name", help="model id (default bpp<B>)")
    t.add_argument("--hidden", type=int, default=24)
    t.add_argument("--depth", type=int, default=3)
    t.add_argument("--num-freqs", type=int, default=3)
    t.add_argument("--patch", default="64", help="patch sides: one side (a square or cube) or sides "
                   "joined by x (video: 24x16x16)")
    t.add_argument("--kappa", type=int, default=16)
    t.add_argument("--num-patches", type=int, default=96)
    t.add_argument("--em-iters", type=int, default=5)
    t.add_argument("--first-steps", type=int, default=400)
    t.add_argument("--steps", type=int, default=200)
    t.add_argument("--linear", action="store_true",
                   help="RECOMBINER's linear reparameterisation [W; b] = H A (A learned with the prior)")
    t.add_argument("--cross-patch", action=argparse.BooleanOptionalAction, default=True,
                   help="code blocks across patches (RECOMBINER): an image's bits go to the patches "
                        "that need them (default; --no-cross-patch: every patch gets the same rate)")
    t.add_argument("--group", default=None,
                   help="a hierarchical prior (RECOMBINER): patches per group, one side or sides joined "
                        "by x (audio: 4; images: 4x4); needs --window and --num-signals")
    t.add_argument("--window", default=None,
                   help="grid points of one training signal of a hierarchical prior, sides joined by x "
                        "(audio: 48000; whole patches)")
    t.add_argument("--num-signals", type=int, default=None,
                   help="training windows of a hierarchical prior (replaces --num-patches)")
    t.add_argument("--shared-beta", action="store_true",
                   help="learn the prior with one beta for all training patches (mean KL = budget)")
    t.add_argument("--pe-grid", type=int, default=0,
                   help="side G of each patch's latent positional-encoding grid (RECOMBINER; 0: none)")
    t.add_argument("--pe-channels", type=int, default=0, help="channels of that grid")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--mix-lr", type=float, default=2e-3, help="learning rate of the mixing matrices A")
    t.add_argument("--beta-init", type=float, default=3e-3)
    t.add_argument("--beta-factor", type=float, default=1.15)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", help="resumable EM checkpoint (.npz)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train_prior)

    e = sub.add_parser("eval", help="rate-distortion evaluation (JSON + RD plot)")
    e.add_argument("images", nargs="+", metavar="files", help="images, audio files or structures")
    e.add_argument("--rate", type=float, nargs="+", help="target rates in the modality's unit")
    e.add_argument("--bpp", type=float, nargs="+", default=[0.1, 0.3, 0.6], help="images: target bpp")
    e.add_argument("--modality",
                   help="image, audio, protein or video (default: from the first file's suffix)")
    e.add_argument("--model", help="model .npz (with a single rate)")
    e.add_argument("--out", default="rd.json")
    e.add_argument("--plot", help="RD plot (PNG)")
    e.add_argument("--baselines", action="store_true", help="the modality's classical codecs at matched "
                   "rate (JPEG / WebP / JPEG 2000; MP3 / Opus; quantisation + xz / zstd; H.264 / H.265)")
    e.add_argument("--time-budget", type=float, help="seconds; no new image starts after it")
    _add_read_options(e)
    _add_coding_options(e)
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)
    return p


def _compilation_cache() -> None:
    """Keep XLA's compiled programs between runs (``$JREC_CACHE``, default
    ``~/.cache/jrec-xla``; ``JREC_CACHE=off`` disables it), unless the user set JAX's own
    cache: a second ``decompress`` with the same model skips the compilation that dominates
    a short file's decoding time. The cache holds programs only, never signals or keys."""
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return
    where = os.environ.get("JREC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jrec-xla"))
    if where.lower() in ("off", "0", "none", ""):
        return
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def main(argv=None) -> int:
    import jrec
    from jrec_inr.codec import CodecError
    from jrec_inr.data import SignalError
    from jrec_inr.prior import ModelError

    args = _parser().parse_args(argv)
    _compilation_cache()
    try:
        return args.func(args)
    except (SignalError, CodecError, ModelError, jrec.JrecError, OSError) as e:
        print(f"jrec-inr {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
