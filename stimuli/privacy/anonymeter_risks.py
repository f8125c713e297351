"""Criterion 3 of the anonymity audit: anonymeter's singling-out, linkability and inference risks.

The three GDPR Article-29 risks, measured with `anonymeter` (Giomi et al. 2023, PoPETs) on window
*feature vectors* (`stimuli.students.features.window_features`): one DataFrame row per 5-minute
window, one column per feature name plus ``label`` (the window's apnea label as a categorical,
the secret of the inference attack).

Each attack is run three times on the same release: against the **members** (windows of the
training persons, whose data shaped the release), against the **control** (windows of held-out
persons, who never touched it) and as anonymeter's random-guess **baseline**. The risk is the
members' excess success over the control's,

    risk = (S_main - S_control) / (1 - S_control)   clipped to [0, 1],

with Wilson-score rates and error propagation (`anonymeter.stats.confidence`). A release passes
when every risk's ``ci_high`` is at most 0.09 (applied by the caller).

Setup that makes members and control comparable. The control are other persons than the
members, so any release, even one unrelated to the data, lets an attacker succeed differently on
the two populations; a white-noise release must still score 0. Hence:

* Exact duplicate rows are dropped, then members and control are subsampled to the **same size
  and the same number of windows per label** (at most ``max_rows``). Singling out runs on these
  two populations: equal sizes keep anonymeter's size correction (a model fitted on unseeded
  polars samples) out of play, equal label counts give an attacker who guesses one label for
  everybody the same success on both.
* Linkability and inference attack ``n_attacks`` random member windows, and as control the
  **nearest control window of the same label** to each of them (L1 on range-scaled features,
  anonymeter's Gower distance; drawn with replacement from all control windows). Without that
  pairing, a white-noise release failed the inference criterion on about one seed in four: its
  release windows are far from all data, so a handful of them are the nearest neighbour of
  nearly every target, the attacker's guess is a coarse random function of the features, and
  its success differs between two populations of persons by several points. Pairing halves
  that spread (s.d. of the members' minus the control's success 0.04 -> 0.02 on Apnea-ECG).
  It does not remove it: the rest comes from those few neighbourhood cells, which anonymeter's
  binomial intervals cannot see, so one split's white-noise inference risk still exceeds 0.09
  now and then (2 of 16 seeds on one person split, 1 of 3 person splits). Judge the pooled
  risks of several person splits (`pool_risks`), where it did not. The targets are passed as
  the whole target frame, so anonymeter's own target draw is only a permutation.
* ``n_attacks`` defaults to 6000, not anonymeter's 500: an inference attack succeeds on about
  half the targets, where 500 attacks give a risk interval of about +-0.11 around 0, wider than
  the 0.09 threshold, so no release could pass. Singling out asks for at most one query per
  release window (``min(n_attacks, len(synthetic))``): each multivariate query is built from one
  release row, and more queries than rows mostly hit anonymeter's attempt cap, which leaves the
  denominator at ``n_attacks`` and underestimates the risk.

Determinism: all draws come from ``np.random.default_rng([seed, zlib.crc32(b"anonymeter")])``.
Singling out gets a seed from it; the pandas draws inside the inference attack (its baseline
guesses) run under a seeded, afterwards restored, NumPy global state; and linkability's baseline,
which anonymeter draws from an unseeded ``np.random.default_rng()``, is drawn from a seeded
generator by the same code (patched in `anonymeter.evaluators.linkability_evaluator` while the
evaluation runs). Neither patch is thread-safe: run one audit at a time per process.

Inference's ``n_baseline`` is low by anonymeter 1.1.0's design: its random guesses are re-indexed
by row label onto the targets, so most come out empty. The baseline only feeds the warning below,
never the risk.

anonymeter's "attack is as good or worse as baseline" warnings and its logged notes (fewer
singling-out queries than asked, ...) are caught and recorded as the block's ``warning``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any
from unittest import mock

import numpy as np
from anonymeter.evaluators import (
    InferenceEvaluator,
    LinkabilityEvaluator,
    SinglingOutEvaluator,
)
from anonymeter.evaluators import linkability_evaluator as _linkability_module
from anonymeter.stats.confidence import EvaluationResults

from stimuli.privacy.anonymeter_inputs import (
    LABEL,
    aux_columns,
    captured_warnings,
    checked_features,
    checked_labels,
    matched_rows,
    nearest_same_label,
    numpy_global_seed,
    seeded_random_links,
    to_frame,
    unique_rows,
)

ATTACKS = ("singling_out", "linkability", "inference")
DEFAULTS: dict[str, Any] = {
    "n_attacks": 6000,
    "n_neighbors": 1,
    "n_cols": 3,
    "confidence": 0.95,
    "max_rows": 6000,
    "max_attempts": 50_000,
    "linkability_aux": None,
}


def _block(results: EvaluationResults, confidence: float, messages: list[str]) -> dict:
    risk = results.risk()
    n_control = results.n_control
    n_control = int(n_control) if float(n_control).is_integer() else float(n_control)
    block = {
        "risk": float(risk.value),
        "ci_low": float(risk.ci[0]),
        "ci_high": float(risk.ci[1]),
        "n_attacks": int(results.n_attacks_ori),
        "n_attacks_baseline": int(results.n_attacks_baseline),
        "n_attacks_control": int(results.n_attacks_control),
        "n_success": int(results.n_success),
        "n_baseline": int(results.n_baseline),
        "n_control": n_control,
        "confidence": float(confidence),
    }
    if messages:
        block["warning"] = "; ".join(dict.fromkeys(messages))
    return block


# --- the criterion -----------------------------------------------------------------------------
def anonymeter_risks(
    original: np.ndarray,
    original_labels: np.ndarray,
    synthetic: np.ndarray,
    synthetic_labels: np.ndarray,
    control: np.ndarray,
    control_labels: np.ndarray,
    names: list[str],
    cfg: Mapping[str, Any],
    seed: int,
) -> dict[str, dict]:
    """{"singling_out": block, "linkability": block, "inference": block}; each block:
    {"risk", "ci_low", "ci_high", "n_attacks", "n_success", "n_baseline", "n_control",
    "confidence"} (plain floats/ints).

    `original`: the members' (training persons') window features ``(N, len(names))``,
    `synthetic`: the release's, `control`: the held-out persons'; each with its 0/1 apnea labels.
    Blocks also hold ``n_attacks_baseline`` and ``n_attacks_control`` (the numbers of baseline
    and control attacks, which `pool_risks` needs) and, when anonymeter complained (e.g. the
    attack did no better than random guessing), ``warning``.

    `cfg` (missing keys take `DEFAULTS`):

    * ``n_attacks`` (6000): targets of linkability and inference, capped at the label-matched
      member/control size (so at ``len(original)``, ``len(control)`` and ``max_rows``); singling
      out asks for ``min(n_attacks, len(synthetic))`` queries; inference's baseline is capped at
      the release size by anonymeter.
    * ``n_neighbors`` (1, anonymeter's default): linkability links a target when the two halves
      of its features share one of their ``n_neighbors`` nearest release windows. On the real
      windows 5 let the control link about half its targets to a leaky release (neighbouring
      windows overlap by 80 %), so the risk was divided by ~0.5 and its interval doubled, while
      with 1 the control links ~5 % and a release of 10 % real windows still scores ~0.18.
      Random links succeed with chance about ``n_neighbors**2 / len(synthetic)``.
    * ``n_cols`` (3): features per multivariate singling-out query.
    * ``max_attempts`` (50000): cap on singling-out query attempts (anonymeter's is 10^7, which
      never ends on a release whose windows cannot be singled out).
    * ``confidence`` (0.95): level of the Wilson intervals.
    * ``max_rows`` (6000): members and control are each subsampled to at most this many windows
      (equal sizes, equal label counts; see the module docstring). At the defaults an audit of 1024
      release windows against ~10000 member and ~6000 control windows takes ~5 s on 1 core.
    * ``linkability_aux``: the attacker's two halves of the columns, a pair of lists of feature
      names (default: the first half of `names` and the rest). ``label`` is not used.
    """
    names = list(names)
    if len(set(names)) != len(names) or LABEL in names:
        raise ValueError(f"names must be distinct feature names, none of them {LABEL!r}")
    opts = {**DEFAULTS, **dict(cfg or {})}
    x_ori = checked_features("original", original, names)
    x_syn = checked_features("synthetic", synthetic, names)
    x_ctl = checked_features("control", control, names)
    y_ori = checked_labels("original_labels", original_labels, len(x_ori))
    y_syn = checked_labels("synthetic_labels", synthetic_labels, len(x_syn))
    y_ctl = checked_labels("control_labels", control_labels, len(x_ctl))
    aux = aux_columns(names, opts["linkability_aux"])
    confidence = float(opts["confidence"])
    if not 0 < confidence < 1:
        raise ValueError(f"cfg confidence must be in (0, 1), got {confidence}")

    rng = np.random.default_rng([int(seed), zlib.crc32(b"anonymeter")])
    keep_ori, keep_ctl = unique_rows(x_ori, y_ori), unique_rows(x_ctl, y_ctl)
    x_ori, y_ori, x_ctl, y_ctl = x_ori[keep_ori], y_ori[keep_ori], x_ctl[keep_ctl], y_ctl[keep_ctl]
    i_ori, i_ctl = matched_rows(y_ori, y_ctl, int(opts["max_rows"]), rng)
    if len(i_ori) < 2:
        raise ValueError("original and control share fewer than 2 windows of matching labels")
    ori = to_frame(x_ori[i_ori], y_ori[i_ori], names)
    ctl = to_frame(x_ctl[i_ctl], y_ctl[i_ctl], names)
    syn = to_frame(x_syn, y_syn, names)
    # Linkability and inference: random member targets, each paired with its nearest control
    # window of the same label (the control mimics the members; see the module docstring).
    t_ori = rng.choice(len(ori), size=min(int(opts["n_attacks"]), len(ori)), replace=False)
    x_t, y_t = x_ori[i_ori][t_ori], y_ori[i_ori][t_ori]
    t_ctl = nearest_same_label(x_t, y_t, x_ctl, y_ctl, np.vstack([x_ori, x_ctl]))
    targets_ori = to_frame(x_t, y_t, names)
    targets_ctl = to_frame(x_ctl[t_ctl], y_ctl[t_ctl], names)
    n_attacks = len(t_ori)
    n_neighbors = min(int(opts["n_neighbors"]), len(syn))
    seeds = rng.integers(2**31, size=3)

    out: dict[str, dict] = {}
    with captured_warnings() as messages:
        so = SinglingOutEvaluator(
            ori=ori,
            syn=syn,
            n_attacks=min(n_attacks, len(syn)),
            n_cols=int(opts["n_cols"]),
            control=ctl,
            max_attempts=int(opts["max_attempts"]),
            seed=int(seeds[0]),
        ).evaluate(mode="multivariate")
        results = so.results(confidence_level=confidence)
    out["singling_out"] = _block(results, confidence, messages)

    with captured_warnings() as messages:
        links = seeded_random_links(np.random.default_rng(int(seeds[1])))
        with mock.patch.object(_linkability_module, "_random_links", links):
            link = LinkabilityEvaluator(
                ori=targets_ori,
                syn=syn,
                aux_cols=aux,
                n_attacks=n_attacks,
                n_neighbors=n_neighbors,
                control=targets_ctl,
            ).evaluate(n_jobs=1)
        results = link.results(confidence_level=confidence)
    out["linkability"] = _block(results, confidence, messages)

    with captured_warnings() as messages:
        with numpy_global_seed(int(seeds[2])):
            inf = InferenceEvaluator(
                ori=targets_ori,
                syn=syn,
                aux_cols=names,
                secret=LABEL,
                regression=False,
                n_attacks=n_attacks,
                control=targets_ctl,
            ).evaluate(n_jobs=1)
        results = inf.results(confidence_level=confidence)
    out["inference"] = _block(results, confidence, messages)
    return out


def pool_risks(per_split: list[dict[str, dict]], confidence: float = 0.95) -> dict[str, dict]:
    """The same blocks for several independent audits (person splits) pooled: attack counts summed
    (main, baseline, control), risk and interval recomputed with anonymeter's EvaluationResults."""
    if not per_split:
        raise ValueError("per_split is empty: pool at least one audit")
    out = {}
    for attack in ATTACKS:
        blocks = [split[attack] for split in per_split]
        n_main = sum(int(b["n_attacks"]) for b in blocks)
        n_base = sum(int(b.get("n_attacks_baseline", b["n_attacks"])) for b in blocks)
        n_ctl = sum(int(b.get("n_attacks_control", b["n_attacks"])) for b in blocks)
        with captured_warnings() as messages:
            results = EvaluationResults(
                n_attacks=(n_main, n_base, n_ctl),
                n_success=sum(int(b["n_success"]) for b in blocks),
                n_baseline=sum(int(b["n_baseline"]) for b in blocks),
                n_control=sum(b["n_control"] for b in blocks),
                confidence_level=confidence,
            )
        out[attack] = _block(results, confidence, messages)
    return out
