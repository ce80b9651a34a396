"""The run report: a self-contained report.html built from a finished run (cnnlab.run).

`write_report(run_dir)` evaluates the checkpoint on the test split, draws confusion.png and
errors.png beside report.html, and embeds every image in the page (base64), so the page opens from
disk in any browser with no server and no network.
"""

from __future__ import annotations

import datetime
import html
import platform
from pathlib import Path
from typing import Any

import torch

from cnnlab.atomic import write_atomic
from cnnlab.errors import CnnlabError
from cnnlab.pages import esc as _esc
from cnnlab.pages import img_tag as _img_tag
from cnnlab.pages import page as _page
from cnnlab.pages import table as _table
from cnnlab.progress import plural
from cnnlab.run import (
    Evaluation,
    Run,
    best_row,
    evaluate_run,
    load_run,
    read_history,
    read_json,
    read_steps,
    top_mistakes,
    torn_lines,
)
from cnnlab.schedule import format_lr

# --- the report --------------------------------------------------------------------------------

def _plural(n: Any, word: str) -> str:
    """'1 epoch', '10 epochs' (escaped)."""
    if not isinstance(n, int):
        return f"{_esc(n)} {word}s"
    return html.escape(plural(n, word))


def _count(v: Any) -> str:
    """A rate or count as a whole number with thousands separators (19,268), not 1.927e+04."""
    return f"{v:,.0f}" if isinstance(v, (int, float)) else _esc(v)


def _duration(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _pct(v: Any) -> str:
    return f"{v:.2%}" if isinstance(v, (int, float)) else "n/a"


def _cost_section(run: Run, history: list[dict[str, Any]]) -> str:
    from cnnlab.cost import format_si, summary

    c, h, w = run.inputs.shape.chw
    batch = int(run.config.get("batch_size") or 1)
    model = run.model.to("cpu")
    try:  # counted on the meta device: no time, no memory, no profiler
        # the run's own optimizer: SGD with momentum keeps a buffer, AdamW two
        opt = {"optimizer": run.config.get("optimizer", "sgd"),
               "momentum": float(run.config.get("momentum") or 0.0)}
        s = summary(model, (c, h, w), measure_memory=False, **opt)
        step = summary(model, (c, h, w), batch_size=batch, measure_memory=False, **opt)
    except Exception as err:  # one section must not cost the whole report; say what failed
        return (f"<p class=muted>The cost summary failed: {html.escape(type(err).__name__)}: "
                f"{html.escape(str(err))}</p>")
    finally:
        run.model.to(run.device)
    cards = [("parameters", f"{s.total_params:,}"),
             ("MACs / image", format_si(s.total_macs)),
             ("FLOPs / image, forward", format_si(s.flops_forward)),
             ("FLOPs / image, fwd + bwd", format_si(s.flops_step)),
             (f"memory of a step, batch {batch} (est.)", format_si(step.memory.total, "B"))]
    steps = max((int(r.get("step") or 0) for r in history), default=0)
    if steps:  # what the whole run cost: every training image seen, forward and backward
        cards.append(("training compute (est.)", format_si(s.flops_step * steps * batch, "FLOP")))
    head = "".join(f'<div class="stat"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                   for k, v in cards)
    text = html.escape(str(s))
    return (f'<div class="stats small">{head}</div><details><summary>per-layer table '
            f"(input {c}&times;{h}&times;{w})</summary><pre>{text}</pre></details>")


def write_report(run_dir: str | Path, checkpoint: str = "last", max_errors: int = 32,
                 limit: int | None = None, evaluation: Evaluation | None = None) -> Path:
    """Evaluate the run and write report.html (self-contained), confusion.png and errors.png.

    evaluation: the last checkpoint's test-split predictions when the caller has them (the
    training that just ended computed them): used instead of evaluating the model again.
    """
    from cnnlab.plots import plot_confusion, plot_curves, save_image_grid

    run_dir = Path(run_dir)
    run = load_run(run_dir, checkpoint)
    result = read_json(run_dir / "result.json") if (run_dir / "result.json").exists() else {}
    history = read_history(run_dir, skip_torn=True)  # a torn last line: skipped, and said
    reuse = (evaluation is not None and checkpoint == "last" and limit is None
             and evaluation.split == "test" and evaluation.n == len(run.dataset.test))
    ev = evaluation if reuse else evaluate_run(run, limit=limit)
    classes = run.classes
    k = len(classes)
    cm = ev.confusion(k)
    plot_confusion(cm, classes, run_dir / "confusion.png")

    # The most confident mistakes are the most telling ones (and often label noise).
    wrong = top_mistakes(ev, max_errors)
    if len(wrong):
        imgs = run.dataset.test.images[wrong]
        titles = [f"{classes[int(ev.preds[i])]} {ev.confidence[i]:.0%}\ntrue: "
                  f"{classes[int(ev.labels[i])]}" for i in wrong]
        save_image_grid(imgs, titles, run_dir / "errors.png", ncols=8, scale=1.7,
                        title_colors=["#b22222"] * len(wrong))
    curves = run_dir / "curves.png"
    if history and not curves.exists():
        plot_curves(history, curves, steps=read_steps(run_dir, skip_torn=True))

    page = _render(run, result, history, ev, cm, len(wrong), checkpoint)
    out = run_dir / "report.html"
    write_atomic(out, page)
    return out


def _render(run: Run, result: dict[str, Any], history: list[dict[str, Any]], ev: Evaluation,
            cm: torch.Tensor, n_errors: int, checkpoint: str) -> str:
    cfg = run.config
    env = cfg.get("environment") or {}
    classes = run.classes
    name = run.run_dir.resolve().name
    knobs = _knobs(cfg)
    title = f"{cfg.get('model')}{f' ({knobs})' if knobs else ''} on {ev.dataset}"
    monitor = str(cfg.get("monitor") or "val_acc")
    best = best_row(history, monitor)  # the epoch best.pt holds
    seconds = result.get("seconds")
    ips = [h["images_per_second"] for h in history if h.get("images_per_second")]
    n_test = len(run.dataset.test)
    test_part = f", {_part(ev.n, n_test)}" if ev.n < n_test else ""
    cards = [("hero", _pct(ev.acc), f"test accuracy ({checkpoint}.pt{test_part})"),
             ("", f"{ev.loss:.4f}", "test loss"),
             ("", _pct(best.get("val_acc")) if monitor == "val_acc"
              else _num(best.get("val_loss")),
              f"best val {monitor[4:]} (epoch {best.get('epoch')}{_val_part(run, best)})"),
             ("", str(len(history)), "epochs run"),
             ("", _duration(seconds), "training time"),
             ("", f"{sum(ips) / len(ips):,.0f}" if ips else "n/a", "train images / s")]
    cards = [c for c in cards if c[1] != "n/a"]  # a card without a value says nothing
    stats = "".join(f'<div class="stat {c}"><b>{html.escape(v)}</b><span>{html.escape(t)}</span>'
                    "</div>" for c, v, t in cards)

    optim = f"{html.escape(str(cfg.get('optimizer', '')))} lr {_esc(cfg.get('lr'))}"
    if cfg.get("momentum"):  # the book's runs use plain SGD; say so when this one did not
        optim += f" momentum {_esc(cfg.get('momentum'))}"
    if cfg.get("schedule") not in (None, "constant"):
        optim += f" ({_esc(cfg.get('schedule'))})"
    parts = [f"<header><h1>{html.escape(title)}</h1><p>run <code>{html.escape(name)}</code>"
             f" &middot; {_scope(cfg)}, {optim}, "
             f"batch {_esc(cfg.get('batch_size'))}, input {run.input_size[0]}&times;"
             f"{run.input_size[1]}</p></header><main>", f'<div class="stats">{stats}</div>']
    for torn in torn_lines(run.run_dir):
        parts.append(f'<p class="note"><b>{torn}:</b> its last line is torn (a crash or an '
                     "unfinished copy left it); this report skipped it</p>")
    if getattr(run.dataset, "note", ""):  # before anyone compares the accuracy with a paper's
        parts.append(f'<p class="note"><b>{html.escape(run.dataset.name)}:</b> '
                     f"{html.escape(run.dataset.note)}</p>")

    curves = run.run_dir / "curves.png"
    steps = read_steps(run.run_dir, skip_torn=True)
    body = _curves_html(curves, history, steps) if curves.exists() else (
        "<p class=muted>no epochs recorded</p>")
    parts.append(f"<section><h2>Learning curves</h2>{body}{_history_table(run, history)}</section>")
    if isinstance(cfg.get("lr_find"), dict):
        parts.append(_lr_find_section(run.run_dir, cfg["lr_find"]))

    per_class = []
    rows = cm.sum(dim=1)
    for i, c in enumerate(classes):
        acc = cm[i, i].item() / max(rows[i].item(), 1)
        off = cm[i].clone()
        off[i] = -1
        j = int(off.argmax())
        confused = (f"{html.escape(classes[j])} ({cm[i, j].item()})" if cm[i, j] > 0 else "&mdash;")
        low = " class=low" if acc < ev.acc - 0.05 else ""
        per_class.append((html.escape(c), f'<span class="num">{acc:.1%}</span>',
                          f'<div class="bar"><i{low} style="width:{acc * 100:.1f}%"></i></div>',
                          confused, f"{rows[i].item()}"))
    parts.append(
        '<div class="grid2"><section><h2>Confusion matrix</h2>'
        f"{_confusion_html(run.run_dir / 'confusion.png', cm, classes)}</section>"
        "<section><h2>Per-class accuracy</h2>"
        + _table(per_class, ("class", "acc", "", "most confused with", "n"))
        + "<p class=muted>Red bars: more than 5 points below the overall accuracy.</p>"
        "</section></div>")

    errors = run.run_dir / "errors.png"
    total = int((ev.preds != ev.labels).sum())
    if n_errors and errors.exists():
        parts.append(f"<section><h2>Most confident mistakes</h2><p class=muted>{n_errors} of "
                     f"{total} misclassified test images, most confident first; each shows the "
                     "predicted class with its probability, then the true class.</p>"
                     f"{_mistake_cards(run, ev, n_errors)}</section>")
    elif total:
        parts.append(f"<section><h2>Mistakes</h2><p>{total} misclassified test images "
                     "(the picture of them is switched off).</p></section>")
    else:
        parts.append("<section><h2>Mistakes</h2><p>No test image is misclassified.</p></section>")

    parts.append(_sees_section(run, ev))
    parts.append(f"<section><h2>Model cost</h2>{_cost_section(run, history)}</section>")

    env_rows = [(html.escape(k), _esc(v)) for k, v in env.items()]
    env_rows.append(("report written by", f"torch {torch.__version__}, python "
                     f"{platform.python_version()} on {html.escape(platform.node())}"))
    parts.append('<div class="grid2"><section><h2>Configuration</h2>' + _config_html(cfg)
                 + "</section><section><h2>Result and timings</h2>"
                 + _result_html(result, history[-1] if history else {}, best)
                 + "<h2 style='margin-top:18px'>Environment</h2>" + _table(env_rows, cls="kv")
                 + "</section></div>")
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<footer>cnnlab report &middot; {html.escape(str(run.checkpoint))} &middot; "
                 f"{ev.n} test images &middot; written {now}</footer></main>")
    return _page(f"{title} \u00b7 cnnlab report", "".join(parts))


def _curves_html(curves: Path, history: list[dict[str, Any]],
                 steps: list[dict[str, Any]]) -> str:
    """curves.png, and on a phone the same curves stacked, so their labels stay legible."""
    from cnnlab.pages import picture_tag
    from cnnlab.plots import constant_lr, curves_figure, figure_png

    if not history:
        return _img_tag(curves, "training curves")
    narrow = curves_figure(history, steps=steps, stacked=True)
    lr = constant_lr(history, steps)
    text = (f'<p class="muted">Learning rate {lr:g} throughout (constant).</p>'
            if lr is not None else "")
    return picture_tag(curves, figure_png(narrow, tight=False), "training curves") + text


def _confusion_html(path: Path, cm: Any, classes: list[str]) -> str:
    """confusion.png, and on a phone a compact drawing of the same matrix that fits the width."""
    from cnnlab.pages import picture_tag
    from cnnlab.plots import confusion_figure, figure_png

    narrow = figure_png(confusion_figure(cm, classes, narrow=True))
    return picture_tag(path, narrow, "confusion matrix")


def _lr_find_section(run_dir: Path, found: dict[str, Any]) -> str:
    """How `--lr find` chose the learning rate: the value, the rule, the range test's curve."""
    lr = found.get("lr")
    text = (f"<p>lr {format_lr(lr) if isinstance(lr, (int, float)) else _esc(lr)} was found by "
            f"the learning-rate range test ({_esc(found.get('steps'))} steps on a fresh model, "
            f"{_esc(found.get('stopped'))}): {_esc(found.get('rule'))}. The run itself started "
            "from its own seeded initialization.</p>")
    picture = run_dir / "lr-find.png"
    if picture.is_file():
        text += _img_tag(picture, "learning-rate range test")
    return f"<section><h2>Learning rate</h2>{text}</section>"


def _mistake_cards(run: Run, ev: Evaluation, n: int) -> str:
    """The n most confident mistakes, each a picture with its caption in HTML (errors.png holds
    the same grid as one picture; HTML captions stay legible on a phone)."""
    from cnnlab.inspect_page import mistake_caption
    from cnnlab.pages import figure, png

    cards = []
    for i in top_mistakes(ev, n).tolist():
        img = run.dataset.test.images[i].float() / 255.0
        img = (img.permute(1, 2, 0) if img.dim() == 3 else img).numpy()  # RGB: (H, W, 3)
        cap = mistake_caption(run.classes, int(ev.preds[i]), float(ev.confidence[i]),
                              int(ev.labels[i]))
        cards.append(figure(png(img, 96), f"test image {i}", cap))
    return f'<div class="cards small">{"".join(cards)}</div>'


def _sees_section(run: Run, ev: Evaluation) -> str:
    """"What the network sees" (cnnlab.inspect); its failure costs the section, not the report."""
    try:
        from cnnlab.inspect_page import report_section

        return report_section(run, ev)
    except CnnlabError as err:  # e.g. a model with no convolution: say so in place
        return (f"<section><h2>What the network sees</h2><p class=muted>"
                f"{html.escape(str(err))}</p></section>")


def _part(n: int, total: int) -> str:
    """'2,048 of 10,000 images': how much of a split a figure covers."""
    return f"{n:,} of {total:,} images"


def _val_part(run: Run, row: dict[str, Any]) -> str:
    """', 2,048 of 10,000 images' when a validation covered part of its split, else ''."""
    n = row.get("val_images")
    if not isinstance(n, int):
        return ""
    total = len(run.split("val"))
    return f", {_part(n, total)}" if n < total else ""


def _scope(cfg: dict[str, Any]) -> str:
    """How much training the run was: '10 epochs', or what made it less than the full data."""
    if cfg.get("dry_run"):  # its metrics come from one batch: say so before any number
        return "dry run (one training batch)"
    epochs = cfg.get("epochs", "?")
    text = _plural(epochs, "epoch")
    if cfg.get("limit_batches"):
        text += f" of {_plural(cfg['limit_batches'], 'batch')}"
    if cfg.get("train_samples"):
        text += f" on {_esc(cfg['train_samples'])} training images"
    return text


def _knobs(cfg: dict[str, Any]) -> str:
    """The run's architecture knobs that differ from its model's defaults ('' for none)."""
    from cnnlab.models import knob_text

    return knob_text(cfg["model"], cfg.get("model_kwargs") or {}) if cfg.get("model") else ""


def _config_html(cfg: dict[str, Any]) -> str:
    """The settings that differ from TrainConfig's defaults up front; all of them folded."""
    from cnnlab.train_config import TrainConfig, format_setting

    defaults = TrainConfig().to_dict()
    items = [(k, v) for k, v in cfg.items()
             if k not in ("environment", "model_kwargs", "lr_find")]
    changed = [(html.escape(k), html.escape(format_setting(v))) for k, v in items
               if k in ("model", "dataset") or defaults.get(k, object()) != v]
    knobs = _knobs(cfg)
    if knobs:  # the architecture knobs that differ from the model's defaults
        changed.insert(1, ("model knobs", html.escape(knobs)))
    every = [(html.escape(k), html.escape(format_setting(v))) for k, v in items]
    return (_table(changed, ("setting", "value"), cls="kv")
            + "<p class=muted>Settings that differ from TrainConfig's defaults.</p>"
            f"<details><summary>all {len(every)} settings</summary>"
            + _table(every, cls="kv") + "</details>")


def _result_html(result: dict[str, Any], final: dict[str, Any], best: dict[str, Any]) -> str:
    """The final and best epochs (from metrics.jsonl) side by side, then result.json's timings.

    Each figure has one source: the test accuracy is the page's evaluation (top), the epochs
    come from the history, "best" is the epoch best.pt holds (the run's monitor)."""
    if not result:
        return "<p class=muted>no result.json (the run has not finished)</p>"
    keys = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    rows = [(f"<b>{name}</b>", *(f'<span class="num">{_esc(row.get(k))}</span>' for k in keys))
            for name, row in (("final", final), ("best", best)) if row]
    head = ("", "epoch", "train loss", "train acc", "val loss", "val acc")
    epochs = f'<div class="scroll">{_table(rows, head)}</div>' if rows else ""
    facts = [("training time", _duration(result.get("seconds"))),
             ("epochs completed", _esc(result.get("epochs_completed"))),
             ("stopped early", _esc(result.get("stopped_early"))),
             ("mean train images / s", _count(result.get("images_per_second")))]
    facts = [(k, v) for k, v in facts if v not in ("", "n/a")]
    other = [(html.escape(k), _esc(v)) for k, v in result.items() if not isinstance(v, dict)]
    return (epochs + _table(facts, cls="kv")
            + f"<details><summary>result.json</summary>{_table(other, cls='kv')}</details>")


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def _history_table(run: Run, history: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    keys = [k for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                        "seconds") if any(k in h for h in history)]
    rows = [tuple(f'<span class="num">{_cell(k, h.get(k))}</span>' for k in keys)
            for h in history]
    note = _val_part(run, history[-1]).lstrip(", ")
    note = f"<p class=muted>Validation on {note} each epoch.</p>" if note else ""
    return (f"<details><summary>per-epoch numbers ({_plural(len(history), 'epoch')})</summary>"
            f'<div class="scroll">{_table(rows, tuple(keys))}</div>{note}</details>')


def _cell(key: str, v: Any) -> str:
    return html.escape(format_lr(v)) if key == "lr" and isinstance(v, float) else _esc(v)
