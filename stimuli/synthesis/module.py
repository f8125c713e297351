"""Lightning module that optimises one shard of stimuli against a frozen teacher."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from stimuli.augment import random_amplitude_scale, random_time_shift
from stimuli.schema import SynthesisConfig
from stimuli.synthesis import losses as L
from stimuli.synthesis.hooks import BatchNormStatHook, FeatureHook
from stimuli.synthesis.parametrization import GaussianSmoothing
from stimuli.synthesis.targets import make_targets


def _freeze(model: nn.Module) -> nn.Module:
    model.requires_grad_(False)
    return model.eval()


def _forward(model: nn.Module, x: Tensor, need_features: bool) -> tuple[Tensor, Tensor | None]:
    """Logits and, if asked, the features ``embed(x)`` — captured as the input of
    ``model.classifier`` in the same pass when the model has one, else via a second call."""
    if not need_features:
        return model(x), None
    if isinstance(getattr(model, "classifier", None), nn.Module):
        with FeatureHook(model, "classifier", capture="input") as fh:
            logits = model(x)
        return logits, fh.value
    return model(x), model.embed(x)


class StimulusGenerator(pl.LightningModule):
    """One shard of ``n`` learnable stimuli optimised against a frozen teacher.

    The teacher, identity model and student are registered as submodules (so Lightning moves
    them to the device) but are frozen and kept in eval mode whatever Lightning calls: BatchNorm
    running statistics never change. Freezing is in place (``requires_grad_(False)``, ``eval()``);
    :func:`~stimuli.synthesis.synthesize` gives the caller's models their flags back afterwards.
    Each training step optimises the whole shard once.
    """

    def __init__(
        self,
        teacher: nn.Module,
        *,
        n: int,
        n_chans: int,
        n_times: int,
        n_classes: int,
        cfg: SynthesisConfig | Mapping[str, Any] | DictConfig | None = None,
        identity_model: nn.Module | None = None,
        centroids: Tensor | None = None,
        student: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = SynthesisConfig.from_any(cfg)
        self.weights = {k: float(v) for k, v in self.cfg.weights.items()}
        w = self.weights
        for term in ("identity_uniform", "identity_mixture"):
            if w[term] and identity_model is None:
                raise ValueError(
                    f"weights.{term} is nonzero but no identity_model was given; "
                    f"pass one or set weights.{term}=0"
                )
        if w["identity_centroid"]:
            if centroids is None:
                raise ValueError(
                    "weights.identity_centroid is nonzero but no centroids were given; "
                    "pass them or set weights.identity_centroid=0"
                )
            if self.cfg.centroid_space == "identity" and identity_model is None:
                raise ValueError("centroid_space='identity' needs an identity_model")
        if w["competition"] and student is None:
            raise ValueError(
                "weights.competition is nonzero but no student was given; "
                "pass one or set weights.competition=0"
            )

        self.n, self.n_chans, self.n_times, self.n_classes = n, n_chans, n_times, n_classes
        self.teacher = _freeze(teacher)
        self.identity_model = _freeze(identity_model) if identity_model is not None else None
        self.student = _freeze(student) if student is not None else None

        if w["bn"] and not any(
            isinstance(m, _BatchNorm) and m.running_mean is not None for m in teacher.modules()
        ):
            warnings.warn(
                "teacher has no BatchNorm layers with running stats; skipping the bn term",
                stacklevel=2,
            )
            w["bn"] = 0.0

        self.generator = torch.Generator().manual_seed(int(seed))
        self.smooth = GaussianSmoothing(self.cfg.smoothing)
        noise = torch.randn((n, n_chans, n_times), generator=self.generator)
        self.latent = nn.Parameter(noise / self.smooth.gain)  # stimuli start at unit variance
        self.register_buffer(
            "targets",
            make_targets(n, n_classes, self.cfg.targets, self.generator),
            persistent=False,
        )
        self.identity_targets: Tensor | None
        if w["identity_mixture"]:
            assert identity_model is not None
            with torch.no_grad():
                n_persons = identity_model(torch.zeros(1, n_chans, n_times)).shape[1]
            self.register_buffer(
                "identity_targets",
                make_targets(n, n_persons, "soft", self.generator),
                persistent=False,
            )
        else:
            self.identity_targets = None
        self.unit_weights: Tensor | None
        if w["hidden"]:
            classifier = getattr(teacher, "classifier", None)
            if not isinstance(classifier, nn.Linear):
                raise ValueError("weights.hidden needs a teacher whose `classifier` is nn.Linear")
            uw = L.class_unit_weights(classifier.weight, self.cfg.hidden_top_frac)
            self.register_buffer("unit_weights", uw, persistent=False)
        else:
            self.unit_weights = None
        self.centroids: Tensor | None
        if w["identity_centroid"]:
            assert centroids is not None
            self.register_buffer("centroids", centroids.detach().float().clone(), persistent=False)
        else:
            self.centroids = None

        self.history: list[Tensor] = []  # total loss per step (detached)
        self.term_history: dict[str, list[Tensor]] = {}  # each term and agreement, per step
        self.last_terms: dict[str, Tensor] = {}

    @property
    def stimuli(self) -> Tensor:
        """The stimuli: the latent seen through the low-pass (the latent itself without one)."""
        return self.smooth(self.latent)

    # --- frozen models stay frozen -------------------------------------------------------
    def _frozen_models(self) -> Iterable[nn.Module]:
        return [m for m in (self.teacher, self.identity_model, self.student) if m is not None]

    def train(self, mode: bool = True) -> StimulusGenerator:
        super().train(mode)
        for m in self._frozen_models():
            m.eval()
        return self

    # --- data / optimisation -------------------------------------------------------------
    def train_dataloader(self) -> list[int]:
        return list(range(self.cfg.steps))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam([self.latent], lr=self.cfg.lr, betas=tuple(self.cfg.betas))
        if self.cfg.schedule == "constant":
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.cfg.steps, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.cfg.clip is not None:
            with torch.no_grad():
                # bounds the latent, and so the stimuli (weighted means of it); with smoothing
                # the first steps clip the large initial latent (sd 1 / gain)
                self.latent.clamp_(*self.cfg.clip)

    # --- the objective -------------------------------------------------------------------
    def compute_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Unweighted loss terms (only those with a nonzero weight) and the teacher's logits on
        the augmented stimuli."""
        w, cfg = self.weights, self.cfg
        x_aug = random_time_shift(x, cfg.max_shift, self.generator, cfg.shift_mode)
        x_aug = random_amplitude_scale(x_aug, cfg.amp_jitter, self.generator)

        need_teacher_feats = bool(
            w["hidden"]
            or w["diversity"]
            or (w["identity_centroid"] and cfg.centroid_space == "teacher")
        )
        with ExitStack() as stack:
            bn = stack.enter_context(BatchNormStatHook(self.teacher)) if w["bn"] else None
            logits, feats = _forward(self.teacher, x_aug, need_teacher_feats)

        terms: dict[str, Tensor] = {}
        if w["class"]:
            terms["class"] = L.class_excitation(logits, self.targets)
        if w["hidden"]:
            assert feats is not None and self.unit_weights is not None
            terms["hidden"] = L.hidden_excitation(feats, self.targets, self.unit_weights)
        if bn is not None:  # per teacher network when the teacher is an ensemble
            terms["bn"] = L.bn_matching(bn) / getattr(self.teacher, "n_members", 1)
        if w["tv"]:
            terms["tv"] = L.total_variation(x)
        if w["l2"]:
            terms["l2"] = L.l2_prior(x)
        need_id_feats = bool(w["identity_centroid"] and cfg.centroid_space == "identity")
        id_feats = None
        if w["identity_uniform"] or w["identity_mixture"] or need_id_feats:
            assert self.identity_model is not None
            id_logits, id_feats = _forward(self.identity_model, x_aug, need_id_feats)
            if w["identity_uniform"]:
                terms["identity_uniform"] = L.identity_uniform(id_logits)
            if w["identity_mixture"]:
                assert self.identity_targets is not None
                terms["identity_mixture"] = L.identity_mixture(id_logits, self.identity_targets)
        if w["identity_centroid"]:
            space_feats = id_feats if need_id_feats else feats
            assert space_feats is not None and self.centroids is not None
            terms["identity_centroid"] = L.identity_centroid(
                space_feats, self.centroids, cfg.centroid_margin, cfg.centroid_temperature
            )
        if w["diversity"]:
            assert feats is not None
            terms["diversity"] = L.diversity(feats)
        if w["competition"]:
            assert self.student is not None
            terms["competition"] = L.competition(logits, self.student(x_aug))
        return terms, logits

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        terms, logits = self.compute_terms(self.stimuli)
        total = sum((self.weights[k] * v for k, v in terms.items()), self.latent.new_zeros(()))
        agreement = (logits.argmax(dim=1) == self.targets.argmax(dim=1)).float().mean()
        for k, v in terms.items():  # every term in the progress bar
            self.log(
                f"synth/{k}",
                v.detach(),
                on_step=True,
                on_epoch=False,
                prog_bar=True,
                batch_size=self.n,
            )
        self.log(
            "synth/total",
            total.detach(),
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            batch_size=self.n,
        )
        self.log("synth/agreement", agreement, on_step=True, on_epoch=False, batch_size=self.n)
        self.last_terms = {k: v.detach() for k, v in terms.items()} | {"total": total.detach()}
        self.history.append(total.detach())
        for k, v in (terms | {"total": total, "agreement": agreement}).items():
            self.term_history.setdefault(k, []).append(v.detach())
        return total

    @torch.no_grad()
    def teacher_probs(self, batch_size: int = 1024) -> Tensor:
        """Teacher softmax on the current stimuli (eval mode, no augmentation), on the CPU."""
        self.teacher.eval()
        out = [
            F.softmax(self.teacher(chunk), dim=1).float().cpu()
            for chunk in self.stimuli.detach().split(batch_size)
        ]
        return torch.cat(out)
