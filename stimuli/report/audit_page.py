"""`audit_report.html`: the verdict first, then per criterion its plot beside its controls."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from stimuli.report.blocks import Note, Section, Table, cell, fmt, image, key_values, write_page
from stimuli.report.canvas import new_figure

RELEASES = ("release", "leaky", "leaky_balanced", "placebo")
TITLES = {
    "attribution": "1. Attribution as membership",
    "in_out": "2. Per-person in/out test",
    "anonymeter": "3. Anonymeter risks",
    "dcr": "4. Distance to closest record",
    "attribution_other_night": "1b. Attribution, other-night attacker",
    "in_out_other_night": "2b. Per-person in/out test, other-night attacker",
}


def roc_figure(pooled: Mapping[str, Any], criterion: str) -> Figure:
    """Each release's ROC of its worst score (highest AUC) on log axes."""
    fig = new_figure(figsize=(5.2, 4.2))
    ax = fig.add_subplot()
    for name in RELEASES:
        scores = {k: v for k, v in pooled[name][criterion].items() if v.get("auc") is not None}
        if not scores:
            continue
        worst = max(scores, key=lambda k: scores[k]["auc"])
        fpr, tpr = np.asarray(scores[worst]["roc"]["fpr"]), np.asarray(scores[worst]["roc"]["tpr"])
        ok = fpr > 0
        label = f"{name}: {worst} (AUC {scores[worst]['auc']:.2f})"
        ax.plot(fpr[ok], np.maximum(tpr[ok], 1e-3), label=label)
    ax.plot([1e-3, 1], [1e-3, 1], "k:", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlabel="false-positive rate", ylabel="true-positive rate")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def scores_table(verdict: Mapping[str, Any], criterion: str) -> Table:
    """Every score of a criterion: AUC [family-wise interval] for the release and controls."""
    block = verdict["criteria"][criterion]
    judged = {"release": block["release"], **block["controls"]}
    names = list(judged["release"].get("scores") or {})
    rows = []
    for name in names:
        row = [cell(name)]
        for r in RELEASES:
            v = ((judged.get(r) or {}).get("scores") or {}).get(name)
            text = (
                "—"
                if v is None
                else (f"{v['auc']:.3f} [{v['family_ci_low']:.2f}, {v['family_ci_high']:.2f}]")
            )
            row.append(cell(text))
        rows.append(row)
    return Table(
        ["score", *RELEASES],
        rows,
        "pooled AUC members vs non-members [family-wise interval]; the worst judges the release",
    )


def mass_figure(pooled: Mapping[str, Any], key: str = "mass") -> Figure:
    """The auditor's attribution mass on members and non-members, per release."""
    fig = new_figure(figsize=(8, 2.8))
    for i, name in enumerate(RELEASES):
        ax = fig.add_subplot(1, len(RELEASES), i + 1)
        mass = pooled[name][key]
        member, value = np.asarray(mass["member"], bool), np.asarray(mass["auditor_mass"])
        ax.boxplot([value[member], value[~member]], tick_labels=["members", "non-members"])
        ax.set_title(name, fontsize=9)
    return fig


def dcr_figure(pooled: Mapping[str, Any]) -> Figure:
    """log(nearest member / nearest non-member distance) of the released windows: an
    anonymous release is centred on 0."""
    fig = new_figure(figsize=(5.2, 3.4))
    ax = fig.add_subplot()
    for name in RELEASES:
        ax.hist(
            pooled[name]["dcr"]["log_ratio"], bins=50, histtype="step", density=True, label=name
        )
    ax.axvline(0, color="k", ls=":", lw=1)
    ax.set(xlabel="log nearest-member / nearest-non-member distance", ylabel="density")
    ax.legend(fontsize=7)
    return fig


def criteria_table(verdict: Mapping[str, Any]) -> Table:
    rows = []
    for name, block in verdict["criteria"].items():
        controls = block["controls"]
        rows.append(
            [
                cell(TITLES.get(name, name)),
                cell("pass" if block["release"]["pass"] else "FAIL"),
                *[
                    cell("fails" if not (controls.get(r) or {}).get("pass") else "passes")
                    for r in ("leaky", "leaky_balanced")
                ],
                cell("passes" if (controls.get("placebo") or {}).get("pass") else "FAILS"),
                cell("yes" if block["counts"] else "no"),
                cell(fmt(block["release"].get("worst"))),
            ]
        )
    headers = ["criterion", "release", "leaky", "leaky balanced", "placebo", "counts", "worst"]
    return Table(
        headers,
        rows,
        "a criterion counts when both leaky releases fail it and the placebo passes it",
    )


def other_night_sections(verdict: Mapping[str, Any], pooled: Mapping[str, Any]) -> list[Section]:
    """Criteria 1-2 for the other-night attacker, when the audit ran it."""
    if "auditor_other_night" not in verdict:
        return []
    control = "the other-night auditor's control (the owner's nights of the persons it learned)"
    return [
        Section(
            TITLES["attribution_other_night"],
            "attribution-other-night",
            [
                image(lambda: mass_figure(pooled, "mass_other_night"), "attribution mass"),
                image(lambda: roc_figure(pooled, "attribution_other_night"), "attribution ROC"),
                key_values(verdict["auditor_other_night"], control),
                scores_table(verdict, "attribution_other_night"),
            ],
        ),
        Section(
            TITLES["in_out_other_night"],
            "in-out-other-night",
            [
                image(
                    lambda: roc_figure(pooled, "in_out_other_night"),
                    "per-person calibrated ROC, log axes",
                ),
                scores_table(verdict, "in_out_other_night"),
            ],
        ),
    ]


def write_audit_report(path: Path, verdict: Mapping[str, Any], pooled: Mapping[str, Any]) -> Path:
    head = (
        f"Anonymity {verdict['anonymity']} over {verdict['n_splits']} person splits "
        f"(mechanism {verdict['mechanism']})."
    )
    if verdict["failing"]:
        head += " Failing or not counting: " + ", ".join(verdict["failing"]) + "."
    sections = [
        Section("Verdict", "verdict", [Note(head), criteria_table(verdict)]),
        Section(
            TITLES["attribution"],
            "attribution",
            [
                image(lambda: mass_figure(pooled), "attribution mass, members vs non-members"),
                image(lambda: roc_figure(pooled, "attribution"), "attribution ROC"),
                key_values(verdict["auditor"], "the auditor's control (late parts of the nights)"),
                scores_table(verdict, "attribution"),
            ],
        ),
        Section(
            TITLES["in_out"],
            "in-out",
            [
                image(lambda: roc_figure(pooled, "in_out"), "per-person calibrated ROC, log axes"),
                scores_table(verdict, "in_out"),
            ],
        ),
        Section(
            TITLES["anonymeter"],
            "anonymeter",
            [key_values({r: pooled[r]["anonymeter"] for r in RELEASES}, "pooled risks")],
        ),
        Section(
            TITLES["dcr"],
            "dcr",
            [
                image(lambda: dcr_figure(pooled), "distance to closest record"),
                key_values(
                    {
                        r: {k: v for k, v in pooled[r]["dcr"].items() if k != "log_ratio"}
                        for r in RELEASES
                    },
                    "share closer to members; near copies",
                ),
            ],
        ),
        *other_night_sections(verdict, pooled),
        Section("Utility over the splits", "utility", [key_values(verdict["utility"], "")]),
        Section("Rules", "rules", [key_values(verdict["rules"], "pass rules (conf/privacy/)")]),
    ]
    facts = [
        ("anonymity", str(verdict["anonymity"])),
        ("splits", str(verdict["n_splits"])),
        ("mechanism", str(verdict["mechanism"])),
    ]
    return write_page(path, f"stimuli audit: {verdict.get('experiment')}", facts, sections)
