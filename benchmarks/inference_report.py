"""The inference benchmark's report: issue 5's targets, computed from the
measured numbers, and the tables of BENCHMARKS.md's sparse inference
section (latency in graph mode and from Python, sizes, TFLite)."""

from benchmarks.harness import tables

# Issue 5 targets: at 95% FC sparsity.
SIZE_TARGET = 0.08            # gzip'd sparse export / gzip'd dense export
LATENCY_TARGETS = {1: 0.5, 256: 0.8}  # FC stack, sparse / dense, per batch size
TARGET_SPARSITY = 0.95
# The parts measured (LeNet-300-100: "fc=whole"; LeNet-5: "fc", "whole").
PART_NAMES = {"fc": "FC stack", "whole": "whole", "fc=whole": "FC stack = whole"}
HEAD = ["model", "part", "target", "FC sparsity (per layer %)"]


def _kib(n):
    return f"{n / 1024:.1f}"


def _timed(result, mode, batch):
    for timed in result["latency"]:
        if timed["mode"] == mode and timed["batch"] == batch:
            return timed
    return None


def _auto_layers(result):
    return "/".join(layer["representation"] for layer in result["auto_layers"] or [])


def _head(r):
    """The cells under `HEAD` of result `r`."""
    return [tables.model_name(r["model"]), PART_NAMES[r["part"]],
            tables.target(r["target"]),
            f"{r['fc_sparsity']:.4f} ({tables.percents([l['sparsity'] for l in r['layers']])})"]


def latency_table(results, mode, representations):
    names = ["auto", *representations]
    control = mode == "graph"
    rows = []
    for r in results:
        for timed in r["latency"]:
            if timed["mode"] != mode:
                continue
            ms, ratio = timed["ms"], timed["ratio"]
            cells = [f"{ms['dense']:.4f}"]
            if control:
                cells.append(f"{ms['control']:.4f} ({ratio['control']:.2f}x)")
            for n in names:
                bold = "**" if n == "auto" else ""
                cells.append(f"{ms[n]:.4f} ({bold}{ratio[n]:.2f}x{bold})")
            rows.append(_head(r) + [_auto_layers(r), timed["batch"]] + cells)
    return tables.table(HEAD + ["auto per layer", "batch", "dense ms"]
                        + (["dense control ms (ratio)"] if control else [])
                        + [f"{n} ms (ratio)" for n in names], rows)


def tflite_table(results):
    return tables.table(
        HEAD + ["batch", "TFLite dense ms", "TFLite sparse ms (ratio)"],
        [_head(r) + [timed["batch"], f"{timed['ms']['dense']:.4f}",
                     f"{timed['ms']['sparse']:.4f} ({timed['ratio']['sparse']:.2f}x)"]
         for r in results for timed in r["latency"] if timed["mode"] == "tflite"])


def size_table(results, representations, tflite):
    names = ["auto", *representations]
    rows = []
    for r in results:
        s, keras_ratio, once = r["sizes"], r["size_ratio"], r["size_ratio_to_once"]
        cells = [str(sum(layer["nonzeros"] for layer in r["layers"])),
                 f"{_kib(r['size_unpruned_dense'])} / {_kib(r['size_unpruned_once'])}",
                 f"{_kib(s['dense'])} ({keras_ratio['dense']:.3f}x)"]
        for n in names:
            bold = "**" if n == "auto" else ""
            cells.append(f"{_kib(s[n])} ({keras_ratio[n]:.3f}x / {bold}{once[n]:.3f}x{bold})")
        if tflite:
            cells.append(_kib(s["tflite_dense"]))
            cells.append(f"{_kib(s['tflite_sparse'])} "
                         f"({keras_ratio['tflite_sparse_to_tflite_dense']:.2f}x)")
        rows.append(_head(r) + cells)
    return tables.table(
        HEAD + ["nonzeros", "unpruned KiB (Keras export / stored once)",
                "dense stripped KiB (x Keras)"]
        + [f"{n} KiB (x Keras / x once)" for n in names]
        + (["TFLite dense KiB", "TFLite sparse KiB (x TFLite dense)"] if tflite else []), rows)


def check_targets(results, tolerance):
    """Issue 5's targets, computed from the measured numbers: a list of
    {"name", "met" (True/False/None: not measured), "detail"}."""
    checks = []
    at_target = [r for r in results if abs(r["target"] - TARGET_SPARSITY) < 1e-9]
    # Size: the whole model's auto export, gzip'd, against the unpruned dense
    # network's: as Keras' export() writes it (every variable twice), and with
    # each weight stored once (like for like with TFMOT's 0.128x).
    rows = [r for r in at_target if r["part"] in ("whole", "fc=whole")]
    for key, reference in (("size_ratio", "the dense Keras export (trainer's export/saved_model)"),
                           ("size_ratio_to_once", "the dense export with each weight stored once")):
        values = [(r["model"], r[key]["auto"]) for r in rows]
        checks.append({
            "name": f"gzip'd size of the sparse export (auto, whole model) at 95% <= "
                    f"{SIZE_TARGET}x {reference}, unpruned",
            "met": all(v <= SIZE_TARGET for _, v in values) if values else None,
            "detail": ", ".join(f"{tables.model_name(m)} {v:.3f}x" for m, v in values),
        })
    # Latency of the FC stack at 95%, graph mode, auto.
    for batch, limit in LATENCY_TARGETS.items():
        values = []
        for r in at_target:
            if r["part"] in ("fc", "fc=whole"):
                timed = _timed(r, "graph", batch)
                if timed is not None:
                    forced = {n: v for n, v in timed["ratio"].items()
                              if n not in ("auto", "control")}
                    best = min(forced, key=forced.get) if forced else None
                    values.append((r["model"], timed["ratio"]["auto"], best,
                                   forced.get(best)))
        checks.append({
            "name": f"FC-stack latency at 95%, batch {batch} (graph mode, auto) <= {limit}x dense",
            "met": all(v[1] <= limit for v in values) if values else None,
            "detail": ", ".join(
                f"{tables.model_name(m)} {v:.2f}x"
                + (f" (fastest forced representation: {b} {bv:.2f}x)" if b else "")
                for m, v, b, bv in values),
        })
    # Never slower: every auto ratio in graph mode, each shown with the dense
    # control's ratio of the same row (the noise of that row).
    rows = [(r, t) for r in results for t in r["latency"] if t["mode"] == "graph"]
    if not rows:
        checks.append({"name": "never slower than dense", "met": None, "detail": ""})
    else:
        limit = 1.0 + tolerance
        over = [(r, t) for r, t in rows if t["ratio"]["auto"] > limit]
        worst_r, worst_t = max(rows, key=lambda rt: rt[1]["ratio"]["auto"])
        worst_control = max(abs(t["ratio"]["control"] - 1.0) for _, t in rows)

        def where(r, t):
            return (f"{tables.model_name(r['model'])} {PART_NAMES[r['part']]} "
                    f"{tables.target(r['target'])} batch {t['batch']}: "
                    f"{t['ratio']['auto']:.2f}x, control {t['ratio']['control']:.2f}x")

        detail = f"worst {where(worst_r, worst_t)}"
        if over:
            detail = (f"{len(over)} of {len(rows)} rows above {limit:.2f}x: "
                      + "; ".join(where(r, t) for r, t in over))
        checks.append({
            "name": f"never slower than dense (auto, graph mode, every model, part, "
                    f"target and batch: ratio <= {limit:.2f}x)",
            "met": not over,
            "detail": f"{detail} (dense control within {worst_control:.2f} of 1 over all rows)",
        })
    # The TFLite route at the latency targets' sparsity, FC stack: its sparse
    # file against its dense file, and against the dense SavedModel as a
    # Python caller sees both (invoke() vs serve(x)). Not judged: another
    # runtime than the SavedModel the targets are about.
    for batch in LATENCY_TARGETS:
        values = []
        for r in at_target:
            tflite, call = _timed(r, "tflite", batch), _timed(r, "call", batch)
            if r["part"] in ("fc", "fc=whole") and tflite is not None and call is not None:
                values.append((r["model"], tflite["ratio"]["sparse"],
                               tflite["ms"]["sparse"] / call["ms"]["dense"]))
        if values:
            checks.append({
                "name": f"(not a target) TFLite, FC stack at 95%, batch {batch}: sparse file / "
                        "dense file; sparse invoke() / dense SavedModel serve(x) from Python",
                "met": None,
                "detail": ", ".join(f"{tables.model_name(m)} {a:.2f}x; {b:.2f}x"
                                    for m, a, b in values),
            })
    calls = [t["ratio"]["auto"] for r in results for t in r["latency"] if t["mode"] == "call"]
    if calls:
        checks.append({
            "name": "(not a target) Python serve() call, auto / dense",
            "met": None,
            "detail": f"{min(calls):.2f}x to {max(calls):.2f}x",
        })
    return checks


def targets_text(checks):
    lines = []
    for c in checks:
        unknown = tables.DASH if c["name"].startswith("(not") else "not measured"
        status = tables.verdict(c["met"], unknown=unknown)
        lines.append(f"- {c['name']}: {c['detail']} — {status}")
    return "\n".join(lines)


def section(payload):
    """(about, tables): what `harness.report.publish` puts after the command
    and below it in BENCHMARKS.md, from the JSON `payload` (its "seconds",
    "settings", "results" and "targets")."""
    results, reps = payload["results"], payload["settings"]["representations"]
    tflite = payload["settings"]["tflite"]
    about = (f" ({payload['seconds']:.0f} s; {payload['settings']['machine']}; "
             f"weights: {payload['settings']['weights']})")
    parts = [
        "**Targets (issue 5), from the numbers below:**\n\n" + targets_text(payload["targets"]),
        "Latency, graph mode (serve() chained inside one tf.function, harness "
        "subtracted; ratio = median of per-round sparse / dense; targets judged here):\n\n"
        + latency_table(results, "graph", reps),
        "Latency, Python call (`serve(x)` per iteration, what a caller sees):\n\n"
        + latency_table(results, "call", reps),
        "Size, gzip -9, against the same network with every connection kept "
        "(unpruned), exported by Keras' `export()` (x Keras: every variable stored "
        "twice) and by `export_sparse(representation=\"dense\")` (x once):\n\n"
        + size_table(results, reps, tflite),
    ]
    empty = [r for r in results if r.get("empty_layers")]
    if empty:
        parts.insert(1, "**Warning**: fully pruned layers (constant output, latency "
                     "meaningless): " + "; ".join(
                         f"{tables.model_name(r['model'])} "
                         f"{PART_NAMES[r['part']]} "
                         f"{tables.target(r['target'])}: {', '.join(r['empty_layers'])}"
                         for r in empty))
    if tflite:
        parts.append("TFLite latency, `Interpreter.invoke()` (dense file vs the "
                     "sparsity-optimised file):\n\n" + tflite_table(results))
    return about, "\n\n".join(parts)
