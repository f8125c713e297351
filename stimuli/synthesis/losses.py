"""Loss terms for stimulus synthesis. Each is pure (tensors in, scalar tensor out).

Lower is better for every term; the generator minimises their weighted sum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from stimuli.synthesis.hooks import BatchNormStatHook


def class_excitation(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the teacher's logits against target probabilities ``(B, K)``.

    With soft targets the minimum is the targets' entropy, not 0 (the gradient equals that of
    KL(targets || softmax)).
    """
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def class_unit_weights(classifier_weight: Tensor, top_frac: float = 0.25) -> Tensor:
    """Per-class weights over hidden units ``(K, D)`` for :func:`hidden_excitation`.

    A unit is associated with class ``k`` by its contrast in the final linear layer,
    ``W[k, d] - mean_{j != k} W[j, d]`` (how much a unit's activation raises class ``k``'s logit
    over the others). Each class keeps its ``ceil(top_frac * D)`` units of largest positive
    contrast, weighted uniformly (rows sum to 1, or are all 0 if no unit has positive contrast).
    """
    w = classifier_weight.detach()
    k, d = w.shape
    others = (w.sum(dim=0, keepdim=True) - w) / max(k - 1, 1)
    contrast = w - others
    top = max(1, math.ceil(top_frac * d))
    idx = contrast.topk(top, dim=1).indices
    mask = torch.zeros_like(w).scatter_(1, idx, 1.0) * (contrast > 0)
    return mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


def hidden_excitation(features: Tensor, class_ids: Tensor, unit_weights: Tensor) -> Tensor:
    """Negative mean activation of the hidden units associated with each stimulus' class.

    ``class_ids`` is either int labels ``(B,)`` or target probabilities ``(B, K)`` (then each
    class' units are weighted by its target probability); ``unit_weights`` ``(K, D)`` comes from
    :func:`class_unit_weights`. Unbounded below for linear features; with ReLU features and
    clipped stimuli it is bounded in practice.
    """
    if class_ids.dim() == 1:
        per_sample = unit_weights[class_ids]
    else:
        per_sample = class_ids.to(unit_weights.dtype) @ unit_weights
    return -(per_sample * features).sum(dim=1).mean()


def bn_matching(hook: BatchNormStatHook) -> Tensor:
    """Sum over BatchNorm layers of the DeepInversion mean/variance distance (see the hook)."""
    return hook.loss


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference between neighbouring time samples."""
    if x.shape[-1] < 2:
        return x.new_zeros(())
    return (x[..., 1:] - x[..., :-1]).abs().mean()


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared value (per element, so independent of the number of stimuli)."""
    return x.pow(2).mean()


def identity_uniform(id_logits: Tensor) -> Tensor:
    """KL(uniform || softmax(id_logits)) averaged over the batch; 0 iff the identity model is
    maximally unsure which person a stimulus came from."""
    n_persons = id_logits.shape[1]
    log_p = F.log_softmax(id_logits, dim=1)
    return (-math.log(n_persons) - log_p.mean(dim=1)).mean()


def identity_mixture(id_logits: Tensor, targets: Tensor) -> Tensor:
    """KL(targets || softmax(id_logits)) averaged over the batch, for per-stimulus person
    mixtures ``targets`` ``(B, P)``. Logits of an ensemble stacked along the batch (``k * B``
    rows) are compared with the targets repeated ``k`` times."""
    reps = id_logits.shape[0] // targets.shape[0]
    t = targets.repeat(reps, 1)
    log_p = F.log_softmax(id_logits, dim=1)
    return (t * (t.clamp_min(1e-12).log() - log_p)).sum(dim=1).mean()


def identity_centroid(
    features: Tensor, centroids: Tensor, margin: float | None = None, temperature: float = 0.1
) -> Tensor:
    """Penalise stimulus embeddings ``(B, D)`` that lie close to one person's centroid ``(P, D)``.

    Distances are Euclidean, divided by the mean pairwise distance between centroids so the term
    does not depend on the feature scale (with one centroid, by its norm).

    - ``margin=None``: mean over stimuli of ``max_p softmax(-dist / temperature)_p - 1/P`` — 0
      when a stimulus is equidistant from all persons, towards ``1 - 1/P`` when it sits on one
      person's centroid. (With a single person this is always 0; use a margin.)
    - ``margin=m``: hinge ``mean relu(m - min_p dist_p)`` — stimuli must keep at least ``m``
      (in the normalised units) from every person's centroid.
    """
    centroids = centroids.to(features.dtype)
    dist = torch.cdist(features, centroids)
    n_persons = centroids.shape[0]
    if n_persons > 1:
        pair = torch.cdist(centroids, centroids)
        scale = pair.sum() / (n_persons * (n_persons - 1))
    else:
        scale = centroids.norm()
    dist = dist / scale.clamp_min(1e-8)
    if margin is not None:
        return F.relu(margin - dist.min(dim=1).values).mean()
    return (F.softmax(-dist / temperature, dim=1).max(dim=1).values - 1.0 / n_persons).mean()


def diversity(features: Tensor) -> Tensor:
    """Mean pairwise cosine similarity between different stimuli of a batch (1 if all equal)."""
    b = features.shape[0]
    if b < 2:
        return features.new_zeros(())
    z = F.normalize(features.flatten(1), dim=1)
    sim = z @ z.T
    return (sim.sum() - sim.diagonal().sum()) / (b * (b - 1))


def competition(teacher_logits: Tensor, student_logits: Tensor | None) -> Tensor:
    """Adaptive DeepInversion competition: ``1 - JS(p_teacher, p_student) / ln 2``, in [0, 1].

    Minimising it rewards stimuli on which a student disagrees with the teacher. 0 without a
    student.
    """
    if student_logits is None:
        return teacher_logits.new_zeros(())
    p = F.softmax(teacher_logits, dim=1)
    q = F.softmax(student_logits, dim=1)
    log_m = (0.5 * (p + q)).clamp_min(1e-12).log()
    js = 0.5 * (
        F.kl_div(log_m, p, reduction="batchmean") + F.kl_div(log_m, q, reduction="batchmean")
    )
    return 1.0 - (js / math.log(2.0)).clamp(0.0, 1.0)
