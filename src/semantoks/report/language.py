"""The report's language section: retrieval beside chance and the FC ceiling, zero-shot vs null, few-shot curves."""

import html
import json
from pathlib import Path

LIMITS = ("Descriptors are functions of FC and the parcel series: retrieval measures how much of that "
          "information a representation keeps, read against the network-FC ridge ceiling. One held-out split "
          "(no split-to-split SD); small held-out sets make chance high. See docs/language.md.")


def _cell(value):
    return "–" if value is None else f"{float(value):.3f}"


def language_section(evaluation_json):
    """HTML of the language evaluation, or an empty string when the stages did not run."""
    if evaluation_json is None or not Path(evaluation_json).is_file():
        return ""
    results = json.loads(Path(evaluation_json).read_text())
    parts = ["<h2>Language-aligned tokens</h2>",
             f"<p class=\"note\">Text encoder {html.escape(str(results['text_encoder'].get('name')))}; "
             f"{results['split']['n_train_scans']} training / {results['split']['n_test_scans']} held-out scans. "
             f"{html.escape(LIMITS)}</p>"]
    for level in ("scan", "network"):
        scores = results.get(f"retrieval_{level}", {})
        if not scores:
            continue
        rows = "".join(
            f"<tr><td>{html.escape(method)}</td>" + "".join(
                f"<td class=\"num\">{_cell(s[m])}<br><span class=\"sub\">chance {_cell(s['chance_' + m])}</span></td>"
                for m in ("top1", "top5", "mrr")) + "</tr>"
            for method, s in scores.items())
        parts.append(f"<h3>Text retrieval, {level} level</h3><table><tr><th>method</th><th>top-1</th>"
                     f"<th>top-5</th><th>MRR</th></tr>{rows}</table>")
    zero = results.get("zero_shot", {})
    if zero:
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td class=\"num\">{_cell(s['balanced_accuracy'])}</td>"
                       f"<td class=\"num\">{_cell(s['null_mean'])} ± {_cell(s['null_sd'])}</td>"
                       f"<td class=\"num\">{_cell(s['p_value'])}</td></tr>" for name, s in zero.items())
        parts.append("<h3>Zero-shot by text prompts</h3>"
                     f"<p class=\"note\">{html.escape(results.get('zero_shot_design', ''))}</p>"
                     "<table><tr><th>phenotype</th>"
                     f"<th>balanced accuracy</th><th>shuffled null</th><th>p</th></tr>{rows}</table>")
    for phenotype, curves in results.get("few_shot", {}).items():
        ks = [point["k"] for point in next(iter(curves.values()))]
        header = "".join(f"<th>k={k}</th>" for k in ks)
        rows = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(
            f"<td class=\"num\">{_cell(p['mean'])} ± {_cell(p['sd'])}</td>" for p in curve) + "</tr>"
            for name, curve in curves.items())
        parts.append(f"<h3>Few-shot {html.escape(phenotype)} (balanced accuracy, subjects per class)</h3>"
                     f"<table><tr><th>features</th>{header}</tr>{rows}</table>")
    return "\n".join(parts)
