"""The report's language section: retrieval beside chance, the constant prediction and the FC ceiling (with
split-to-split SDs), label transfer beside a same-subject probe and its null (per held-out cohort when there
are several), descriptor-attribute probes and few-shot curves."""

import html
import json
from pathlib import Path

LIMITS = ("Descriptors are functions of FC and the parcel series: retrieval measures how much of that "
          "information a representation keeps, read against the network-FC ridge ceiling. Many scans share a "
          "text, so chance is from the distinct texts and a scan-blind constant prediction is the no-information "
          "level. Label transfer is supervised (the head saw training subjects' phenotype sentences), not "
          "zero-shot: read it against the logistic probe on the same subjects. See docs/language.md.")


def _cell(value):
    return "–" if value is None else f"{float(value):.3f}"


def retrieval_verdict(level, scores, splits=None):
    """One plain line: does the aligned head retrieve its own texts better than chance and than the scan-blind
    constant prediction, and how far from the ceiling."""
    aligned, ceiling, constant = scores.get("aligned"), scores.get("network_fc_ridge"), scores.get("constant")
    if aligned is None:
        return ""
    above = aligned["mrr"] > aligned["chance_mrr"] * 1.1 and aligned["top1"] > aligned["chance_top1"]
    line = (f"{level.capitalize()} level: the aligned head retrieves held-out texts "
            f"{'above' if above else 'at'} chance (MRR {aligned['mrr']:.3f} vs {aligned['chance_mrr']:.3f})")
    if constant is not None:
        beats = aligned["mrr"] > constant["mrr"]
        line += (f" and {'above' if beats else 'not above'} the scan-blind constant prediction "
                 f"(MRR {constant['mrr']:.3f})")
    if ceiling is not None:
        line += f"; the network-FC ridge ceiling reaches {ceiling['mrr']:.3f}"
    repeated = (splits or {}).get("aligned"), (splits or {}).get("constant")
    if all(repeated):
        # one split can sit on either side of the constant row by chance: the splits' spread says which
        line += (f". Over {repeated[0]['n_splits']} splits the aligned MRR is {repeated[0]['mrr']['mean']:.3f} ± "
                 f"{repeated[0]['mrr']['sd']:.3f}, the constant's {repeated[1]['mrr']['mean']:.3f} ± "
                 f"{repeated[1]['mrr']['sd']:.3f}")
    return line + "."


def _label_transfer_rows(scores, label=""):
    return "".join(f"<tr><td>{html.escape(label)}{html.escape(name)}</td>"
                   f"<td class=\"num\">{_cell(s['balanced_accuracy'])}</td>"
                   f"<td class=\"num\">{_cell(s['null_mean'])} ± {_cell(s['null_sd'])}</td>"
                   f"<td class=\"num\">{_cell(s['p_value'])}</td></tr>" for name, s in scores.items())


def _attribute_table(probes):
    families = probes.get("per_family", {})
    if not families:
        return ""
    sets = list(next(iter(families.values())))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in sets)
    rows = "".join(f"<tr><td>{html.escape(family)}</td>" + "".join(
        f"<td class=\"num\">{_cell(by_set[name]['balanced_accuracy'])}<br><span class=\"sub\">null "
        f"{_cell(by_set[name]['null_mean'])}, majority {_cell(by_set[name]['majority'])}</span></td>"
        for name in sets) + "</tr>" for family, by_set in families.items())
    bands = " / ".join(probes.get("bands", []))
    return (f"<h3>Descriptor-attribute probes (balanced accuracy over {probes.get('n_descriptors', 0)} "
            f"descriptors, bands {html.escape(bands)})</h3>"
            f"<table><tr><th>family</th>{header}</tr>{rows}</table>")


def _splits_table(level, splits):
    """Mean ± SD over the repeated language splits of one level's retrieval."""
    summary = splits.get("summary", {}).get(level, {})
    if not summary:
        return ""
    rows = "".join(f"<tr><td>{html.escape(method)}</td>" + "".join(
        f"<td class=\"num\">{_cell(s[m]['mean'])} ± {_cell(s[m]['sd'])}<br><span class=\"sub\">chance "
        f"{_cell(s['chance_' + m]['mean'])}</span></td>" for m in ("top1", "top5", "mrr")) + "</tr>"
        for method, s in summary.items())
    return (f"<p class=\"note\">Over {len(splits.get('seeds', []))} language splits (seeds "
            f"{', '.join(map(str, splits.get('seeds', [])))}), each with its own z-reference, texts, text-encoder "
            "fit, heads and ridge maps: mean ± SD.</p>"
            f"<table><tr><th>method</th><th>top-1</th><th>top-5</th><th>MRR</th></tr>{rows}</table>")


def _codebook_table(codebooks):
    """Codebook usage on the training subjects' tokens: k-means codes beside the trained VQ tokenizer's."""
    if not codebooks:
        return ""
    rows = ""
    for name, record in codebooks.items():
        train = record["train"]
        size = train.get("codebook_size", train.get("k"))
        rows += (f"<tr><td>{html.escape(name)}</td><td class=\"num\">{size}</td>"
                 f"<td class=\"num\">{train['perplexity']:.1f}</td><td class=\"num\">{train['dead_codes']}</td></tr>")
    return ("<h3>Network-token codebooks (training subjects' tokens)</h3><p class=\"note\">codes: cosine k-means on "
            "the frozen tokens; vq_codes: the text-aligned VQ tokenizer trained with reconstruction, commitment and "
            "soft SigLIP alignment. Perplexity = exp(code-usage entropy), K when every code is used equally.</p>"
            "<table><tr><th>codebook</th><th>K</th><th>perplexity</th><th>dead codes</th></tr>"
            f"{rows}</table>")


def _label_transfer_section(results):
    transfer = results.get("label_transfer", {})
    if not transfer:
        return ""
    rows = _label_transfer_rows(transfer, "pooled: " if "label_transfer_loco" in results else "")
    for cohort, scores in results.get("label_transfer_loco", {}).get("per_cohort", {}).items():
        rows += _label_transfer_rows(scores, f"held-out cohort {cohort}: ")
    return ("<h3>Label transfer through text space, beside a logistic probe on the same subjects</h3>"
            "<p class=\"note\">Supervised, not zero-shot: the head was trained on the training subjects' phenotype "
            "sentences and each scan takes the class of the nearest prompt. <i>_logistic_probe</i>: a logistic "
            "regression on the same features and training subjects; <i>_without_phenotype_sentences</i>: the "
            f"plain scan head. {html.escape(results.get('label_transfer_design', ''))}</p>"
            "<table><tr><th>phenotype</th>"
            f"<th>balanced accuracy</th><th>shuffled null</th><th>p</th></tr>{rows}</table>")


def language_section(evaluation_json):
    """HTML of the language evaluation, or an empty string when the stages did not run."""
    if evaluation_json is None or not Path(evaluation_json).is_file():
        return ""
    results = json.loads(Path(evaluation_json).read_text())
    parts = ["<h2>Language-aligned tokens</h2>",
             f"<p class=\"note\">Text encoder {html.escape(str(results['text_encoder'].get('name')))}; "
             f"{results['split']['n_train_scans']} training / {results['split']['n_test_scans']} held-out scans. "
             f"{html.escape(LIMITS)}</p>"]
    splits_summary = results.get("retrieval_splits", {}).get("summary", {})
    for level in ("scan", "network"):
        scores = results.get(f"retrieval_{level}", {})
        if not scores:
            continue
        rows = "".join(
            f"<tr><td>{html.escape(method)}</td>" + "".join(
                f"<td class=\"num\">{_cell(s[m])}<br><span class=\"sub\">chance {_cell(s['chance_' + m])}</span></td>"
                for m in ("top1", "top5", "mrr")) + "</tr>"
            for method, s in scores.items())
        parts.append(f"<h3>Text retrieval, {level} level</h3>"
                     f"<p>{html.escape(retrieval_verdict(level, scores, splits_summary.get(level)))}</p>"
                     f"<p class=\"note\">{html.escape(results.get('retrieval_ranks', ''))}; <i>constant</i>: the "
                     "training texts' mean vector for every scan (scan-blind).</p>"
                     "<table><tr><th>method</th><th>top-1</th>"
                     f"<th>top-5</th><th>MRR</th></tr>{rows}</table>"
                     + _splits_table(level, results.get("retrieval_splits", {})))
    parts.append(_codebook_table(results.get("codebooks", {})))
    parts.append(_label_transfer_section(results))
    parts.append(_attribute_table(results.get("attribute_probes", {})))
    for phenotype, curves in results.get("few_shot", {}).items():
        ks = [point["k"] for point in next(iter(curves.values()))]
        header = "".join(f"<th>k={k}</th>" for k in ks)
        rows = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(
            f"<td class=\"num\">{_cell(p['mean'])} ± {_cell(p['sd'])}</td>" for p in curve) + "</tr>"
            for name, curve in curves.items())
        parts.append(f"<h3>Few-shot {html.escape(phenotype)} (balanced accuracy, subjects per class)</h3>"
                     f"<table><tr><th>features</th>{header}</tr>{rows}</table>")
    return "\n".join(parts)
