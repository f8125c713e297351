"""Criterion 3 (stimuli/privacy/anonymeter_risks.py): anonymeter's singling-out, linkability and
inference risks on real Apnea-ECG window features. A leaky release (real training windows) must
fail, a white-noise placebo must pass, results must repeat for a seed and pool over splits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.privacy.anonymeter_risks import ATTACKS, anonymeter_risks, pool_risks
from stimuli.students.features import feature_names, window_features

# 8 nights (8 persons: 5 train, 3 held out); ~2450 member and ~1480 control windows.
RECORDS = ["a01", "a02", "a03", "a04", "b01", "b02", "c01", "c02"]
CFG = {"n_attacks": 2000, "max_rows": 2000}
N_RELEASE = 512
THRESHOLD = 0.09
KEYS = ("risk", "ci_low", "ci_high", "n_attacks", "n_success", "n_baseline", "n_control")


@pytest.fixture(scope="module")
def real(apnea_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    dm = ApneaECGDataModule(
        root=apnea_root, records=RECORDS, cache_dir=tmp_path_factory.mktemp("c"), progress=False
    )
    dm.prepare_data()
    dm.setup()
    x_tr, y_tr, _ = dm.datasets["train"].arrays()
    held = [dm.datasets[s].arrays() for s in ("val", "test")]
    x_ct = np.concatenate([h[0] for h in held])
    rng = np.random.default_rng(0)
    leak = rng.choice(len(x_tr), N_RELEASE, replace=False)
    noise = rng.standard_normal((N_RELEASE, *x_tr.shape[1:]))
    return SimpleNamespace(
        names=feature_names(dm.n_chans, dm.fs),
        f_tr=window_features(x_tr, dm.fs),
        y_tr=y_tr,
        f_ct=window_features(x_ct, dm.fs),
        y_ct=np.concatenate([h[1] for h in held]),
        leaky=(window_features(x_tr[leak], dm.fs), y_tr[leak]),
        noise=(window_features(noise, dm.fs), rng.integers(0, 2, N_RELEASE)),
    )


def audit(real: SimpleNamespace, release: str, seed: int = 0, **cfg) -> dict[str, dict]:
    syn, syn_y = getattr(real, release)
    return anonymeter_risks(
        real.f_tr, real.y_tr, syn, syn_y, real.f_ct, real.y_ct, real.names, {**CFG, **cfg}, seed
    )


@pytest.fixture(scope="module")
def audits(real: SimpleNamespace) -> dict[str, dict]:
    return {"leaky": audit(real, "leaky"), "noise": audit(real, "noise")}


def test_blocks_hold_plain_risks_inside_their_intervals(audits):
    for result in audits.values():
        assert set(result) == set(ATTACKS)
        for block in result.values():
            assert all(type(block[k]) is float for k in ("risk", "ci_low", "ci_high"))
            assert all(type(block[k]) is int for k in ("n_attacks", "n_success", "n_baseline"))
            assert 0.0 <= block["ci_low"] <= block["risk"] <= block["ci_high"] <= 1.0
            assert 0 <= block["n_success"] <= block["n_attacks"]
            assert 0 <= block["n_control"] <= block["n_attacks_control"]
            assert block["confidence"] == 0.95
    # capped: singling out at one query per release window, the others at the control's size
    leaky = audits["leaky"]
    assert leaky["singling_out"]["n_attacks"] == N_RELEASE
    assert 1000 < leaky["inference"]["n_attacks"] <= CFG["n_attacks"]


def test_leaky_copies_fail_and_white_noise_passes(audits):
    leaky = {k: b["ci_high"] for k, b in audits["leaky"].items()}
    noise = {k: b["ci_high"] for k, b in audits["noise"].items()}
    assert max(leaky.values()) > THRESHOLD, leaky
    # a release of real member windows is caught by every attack, not only one
    assert all(b["ci_low"] > THRESHOLD for b in audits["leaky"].values()), audits["leaky"]
    assert max(noise.values()) <= THRESHOLD, noise


def test_same_seed_repeats_exactly_and_anonymeter_stays_quiet(real, audits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = audit(real, "noise")
    assert again == audits["noise"]
    assert not [w for w in caught if "baseline" in str(w.message)]
    # the noise's linkability never beats random links: the warning is kept in the block
    assert "baseline" in audits["noise"]["linkability"]["warning"]


def test_pool_sums_the_counts_and_narrows_the_interval(real, audits):
    other = audit(real, "noise", seed=1)
    assert other != audits["noise"]
    splits = [audits["noise"], other]
    pooled = pool_risks(splits)
    for attack in ATTACKS:
        blocks = [s[attack] for s in splits]
        for key in ("n_attacks", "n_success", "n_baseline", "n_control", "n_attacks_control"):
            assert pooled[attack][key] == sum(b[key] for b in blocks)
        width = pooled[attack]["ci_high"] - pooled[attack]["ci_low"]
        if attack != "linkability":  # no links at all: both intervals are a sliver at 0
            assert all(width < b["ci_high"] - b["ci_low"] for b in blocks), (attack, pooled)
    # pooled, the placebo passes with ~2x the attacks (one split of this small cohort has only
    # ~1480 control windows, an inference interval of about +-0.07)
    assert all(b["ci_high"] <= THRESHOLD for b in pooled.values()), pooled
    # one split pooled alone is that split
    alone = pool_risks([audits["leaky"]])
    for attack in ATTACKS:
        assert {k: alone[attack][k] for k in KEYS} == {k: audits["leaky"][attack][k] for k in KEYS}
    with pytest.raises(ValueError, match="per_split"):
        pool_risks([])


def test_mismatched_inputs_raise_naming_the_argument(real):
    f_tr, y_tr, f_ct, y_ct, names = real.f_tr, real.y_tr, real.f_ct, real.y_ct, real.names
    syn, syn_y = real.noise

    def run(**changes):
        args = {
            "original": f_tr,
            "original_labels": y_tr,
            "synthetic": syn,
            "synthetic_labels": syn_y,
            "control": f_ct,
            "control_labels": y_ct,
            "names": names,
            "cfg": CFG,
            "seed": 0,
        }
        return anonymeter_risks(**{**args, **changes})

    with pytest.raises(ValueError, match="synthetic has 14 feature columns but names has 15"):
        run(synthetic=syn[:, :-1])
    with pytest.raises(ValueError, match="control_labels"):
        run(control_labels=y_ct[:-1])
    with pytest.raises(ValueError, match="original_labels must hold apnea labels 0/1"):
        run(original_labels=y_tr + 1)
    with pytest.raises(ValueError, match="original must be 2-D"):
        run(original=f_tr[:, None])
    with pytest.raises(ValueError, match="names"):
        run(names=[*names[:-1], "label"])
    with pytest.raises(ValueError, match="linkability_aux"):
        run(cfg={**CFG, "linkability_aux": [names[:3], ["nope"]]})
