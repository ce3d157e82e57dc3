"""The ``supervised`` CKN (Mairal 2016): layerwise anchors trained end to end.

Starts from :class:`~kernelzoo.approx.ckn.LayerwiseCKN`'s k-means anchors and
trains them, alternating an exact refit of a one-vs-all linear classifier
(lambda chosen on a validation split taken out of the training data) with SGD
on the anchors, re-projected to the sphere after every step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from kernelzoo.approx.base import check_budget, generator

from kernelzoo.approx.ckn import LayerwiseCKN

__all__ = ["SupervisedCKN"]


class SupervisedCKN(LayerwiseCKN):
    """The Nyström CKN network with anchors trained end to end (Mairal 2016).

    ``fit(X, y)`` initialises as :class:`LayerwiseCKN` on the training part,
    then for every epoch refits a one-vs-all linear classifier exactly (ridge or
    squared hinge, lambda chosen on a validation split taken out of ``X``) and
    runs SGD with momentum on the anchors against that classifier's loss
    (anchors re-projected to the unit sphere after each step; the learning rate
    decays geometrically to ``lr * lr_final`` over the epochs). The classifier is
    refitted on the final features; the network kept is the one (initial,
    after an epoch, or final) whose refitted classifier has the best validation
    accuracy, with that classifier: :meth:`predict`, :meth:`score`.
    :meth:`fit_split` takes an explicit validation split instead of ``val_fraction``.

    After fitting: ``loss_history_`` (mean training loss of each epoch),
    ``val_accuracy_history_`` (validation accuracy of each refit: before
    every epoch, then final; entry 0 is the layerwise initialisation) and
    ``best_epoch_`` (the entry of the network kept), ``grad_norm_history_`` (the
    median over each epoch's steps of the anchors' gradient norm, before clipping).

    Parameters
    ----------
    kernel : Kernel
        The exact kernel to approximate.
    budget : int or list of int
        Anchors per layer.
    seed : int, default 0
        Seed of every random draw (CPU float64 generator), in ``[0, 2**32 - 1]``.

    Other Parameters
    ----------------
    n_patches, kmeans_iters, eps, rel_clip
        As :class:`LayerwiseCKN` (the initialisation).
    batch_size : int, default 128
        Images per SGD step.
    epochs : int, default 10
        Epochs of SGD on the anchors.
    lr : float, default 0.01
        Learning rate (on Fashion-MNIST at anchors [16, 32], 8000 images: 0.03 trains
        with ``min_lambda`` 1e-4 or 1e-6, 0.1 diverged with 1e-6; 1.0 diverged earlier).
    momentum : float, default 0.9
        SGD momentum.
    lr_final : float, default 0.1
        The last epoch's learning rate, relative to ``lr``.
    val_fraction : float, default 0.2
        Part of ``X`` held out for validation by :meth:`fit`.
    classifier : {'ridge', 'squared_hinge'}, default 'ridge'
        The linear classifier refitted exactly at every epoch.
    min_lambda : float, default 1e-4
        The classifier that the anchors are trained against has its lambda chosen
        on validation among ``lambda >= min_lambda * top`` (``top``: the largest
        eigenvalue of the centred ``F^T F / n``); 0 lifts the floor. The final
        classifier, and the choice of the network kept, use the full grid.
    max_grad_norm : float, optional
        Clip the anchors' gradient to this Euclidean norm (all layers together)
        before each step; None: no clipping.
    device : str, optional
        Where to train (default: where X is).
    progress : bool, default True
        A tqdm progress bar over epochs.
    """

    method = "supervised"
    requires_labels = True
    trains_features = False  # trained for classification already: fixed features downstream
    options: ClassVar[dict[str, Any]] = {
        **LayerwiseCKN.options, "batch_size": 128, "epochs": 10, "lr": 0.01, "momentum": 0.9,
        "lr_final": 0.1, "val_fraction": 0.2, "classifier": "ridge", "min_lambda": 1e-4,
        "max_grad_norm": None, "device": None,
        "progress": True,
    }

    def _check_options(self) -> None:
        super()._check_options()
        check_budget(self.opts["epochs"], "epochs")
        vf = self.opts["val_fraction"]
        if not isinstance(vf, (int, float)) or not 0 < vf < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {vf!r}")
        if self.opts["classifier"] not in ("ridge", "squared_hinge"):
            raise ValueError(
                f"classifier={self.opts['classifier']!r} is not allowed; expected 'ridge' or "
                f"'squared_hinge'"
            )
        ml = self.opts["min_lambda"]
        if isinstance(ml, bool) or not isinstance(ml, (int, float)) or ml < 0:
            raise ValueError(f"min_lambda must be a number >= 0, got {ml!r}")
        clip = self.opts["max_grad_norm"]
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                                 or not clip > 0):
            raise ValueError(f"max_grad_norm must be None or a number > 0, got {clip!r}")
        for name in ("lr", "lr_final"):
            if not isinstance(self.opts[name], (int, float)) or self.opts[name] <= 0:
                raise ValueError(f"{name} must be > 0, got {self.opts[name]!r}")

    def _refit_classifier(self, f_tr, y_tr, f_val, y_val, training: bool = False):
        """The validation-chosen classifier; for ``training``, lambda >= ``min_lambda * top``.

        ``top`` is the largest eigenvalue of the centred ``F^T F / n`` (the scale of the
        default lambda grids). A tiny lambda gives huge weights, and then the loss is so
        sharp in the anchors that SGD diverges; the final classifier uses the full grid.
        """
        from kernelzoo.classify import (
            default_lambdas,
            fit_ridge_classifier,
            fit_squared_hinge_classifier,
        )

        ridge = self.opts["classifier"] == "ridge"
        fit = fit_ridge_classifier if ridge else fit_squared_hinge_classifier
        floor = float(self.opts["min_lambda"])
        if not training or floor <= 0:
            return fit(f_tr, y_tr, f_val, y_val)
        centred = (f_tr - f_tr.mean(0)).double()
        vec = torch.ones(centred.shape[1], dtype=torch.float64, device=centred.device)
        for _ in range(30):  # power iteration: the top eigenvalue, to a few digits
            vec = centred.T @ (centred @ vec)
            vec = vec / vec.norm().clamp_min(1e-300)
        top = float((centred @ vec).square().sum()) / centred.shape[0]
        grid = default_lambdas(top) if ridge else top * np.logspace(-8, 0, 9)
        return fit(f_tr, y_tr, f_val, y_val, lambdas=grid[grid >= 0.999 * floor * top])

    def _loss(self, scores: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
              lam: float) -> torch.Tensor:
        if self.opts["classifier"] == "ridge":
            data = (scores - targets).square().sum(1).mean()
        else:
            data = (1.0 - targets * scores).clamp_min(0.0).square().sum(1).mean()
        return data + lam * weight.square().sum()

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if y is None:
            raise ValueError("supervised CKN needs labels: fit(X, y)")
        y = y.reshape(-1).to(torch.int64).cpu()
        gen = generator(self.seed + 1)
        n = x.shape[0]
        n_val = max(1, round(self.opts["val_fraction"] * n))
        if n - n_val < 2:
            raise ValueError(f"too few samples ({n}) for val_fraction={self.opts['val_fraction']}")
        perm = torch.randperm(n, generator=gen)
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        self._train(x[tr_idx.to(x.device)], y[tr_idx], x[val_idx.to(x.device)], y[val_idx], gen)

    def fit_split(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> SupervisedCKN:
        """Fit with an explicit validation split (``val_fraction`` is not used).

        The validation split chooses the classifier's lambda at every refit, as in :meth:`fit`.

        Shape: ``X_train (n, ...)``, ``y_train (n,)``, ``X_val (m, ...)``, ``y_val (m,)``.

        Parameters
        ----------
        X_train, y_train : array or tensor
            Training images and labels.
        X_val, y_val : array or tensor
            Validation images and labels.

        Returns
        -------
        SupervisedCKN
            ``self``, fitted.
        """
        x_tr = self.kernel.prepare(X_train, "X_train")
        x_val = self.kernel.prepare(X_val, "X_val")
        if tuple(x_val.shape[1:]) != tuple(x_tr.shape[1:]):
            raise ValueError(
                f"X_val has feature shape {tuple(x_val.shape[1:])} but X_train has "
                f"{tuple(x_tr.shape[1:])}"
            )
        labels = []
        for name, t, xx in (("y_train", y_train, x_tr), ("y_val", y_val, x_val)):
            t = torch.as_tensor(np.asarray(t) if not torch.is_tensor(t) else t)
            if t.reshape(-1).shape[0] != xx.shape[0]:
                raise ValueError(f"{name} has {t.reshape(-1).shape[0]} labels but there are "
                                 f"{xx.shape[0]} samples")
            labels.append(t.reshape(-1).to(torch.int64).cpu())
        self._cache = {}
        self.input_shape_ = tuple(x_tr.shape[1:])
        self._train(x_tr, labels[0], x_val, labels[1], generator(self.seed + 1))
        self.fitted_ = True
        return self

    def _train(self, x_tr: torch.Tensor, y_tr: torch.Tensor, x_val: torch.Tensor,
               y_val: torch.Tensor, gen: torch.Generator) -> None:
        from tqdm.auto import tqdm

        device = torch.device(self.opts["device"]) if self.opts["device"] else x_tr.device
        x_tr, x_val = x_tr.to(device), x_val.to(device)
        x = x_tr
        super()._fit(x_tr, None)  # layerwise initialisation on the training part
        net = self._build_network(device, x.dtype)
        params = [layer.weight for layer in net.layers]
        opt = torch.optim.SGD(params, lr=float(self.opts["lr"]),
                              momentum=float(self.opts["momentum"]))
        epochs = int(self.opts["epochs"])
        decay = float(self.opts["lr_final"]) ** (1.0 / max(1, epochs - 1))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
        batch = int(self.opts["batch_size"])
        self.loss_history_ = []
        self.val_accuracy_history_ = []
        self.grad_norm_history_ = []
        clip = self.opts["max_grad_norm"]
        bar = tqdm(range(epochs), desc="supervised ckn", disable=not self.opts["progress"],
                   leave=False)
        best: tuple[float, list[torch.Tensor], Any] | None = None
        for _ in bar:
            with torch.no_grad():
                f_tr, f_val = self._batched(net, x_tr), self._batched(net, x_val)
            clf = self._refit_classifier(f_tr, y_tr, f_val, y_val)
            self.val_accuracy_history_.append(clf.val_accuracy)
            if best is None or clf.val_accuracy > best[0]:
                best = (clf.val_accuracy, [layer.weight.detach().clone() for layer in net.layers],
                        clf)
            if float(self.opts["min_lambda"]) > 0:  # the classifier the anchors train against
                clf = self._refit_classifier(f_tr, y_tr, f_val, y_val, training=True)
            del f_tr, f_val
            weight = clf.weight.to(device=device, dtype=x.dtype)
            intercept = clf.intercept.to(device=device, dtype=x.dtype)
            targets = torch.where(y_tr[:, None] == clf.classes[None, :], 1.0, -1.0).to(
                device=device, dtype=x.dtype)
            order = torch.randperm(x_tr.shape[0], generator=gen).to(device)
            total, count, norms = 0.0, 0, []
            for s in range(0, x_tr.shape[0], batch):
                idx = order[s:s + batch]
                opt.zero_grad()
                loss = self._loss(net(x_tr[idx]) @ weight + intercept, targets[idx], weight,
                                  clf.lam)
                loss.backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(
                    params, float("inf") if clip is None else float(clip))))
                opt.step()
                for layer in net.layers:
                    layer.normalise_()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            sched.step()
            self.loss_history_.append(total / count)
            self.grad_norm_history_.append(float(np.median(norms)))
            bar.set_postfix(loss=self.loss_history_[-1], val_acc=clf.val_accuracy)
        net.requires_grad_(False)
        clf = self._fit_classifier_on(net, x_tr, y_tr, x_val, y_val)
        self.val_accuracy_history_.append(clf.val_accuracy)
        self.best_epoch_ = len(self.val_accuracy_history_) - 1
        if best is not None and best[0] > clf.val_accuracy:  # keep the best network on validation
            with torch.no_grad():
                for layer, weight in zip(net.layers, best[1], strict=True):
                    layer.weight.copy_(weight)
            clf = best[2]
            self.best_epoch_ = self.val_accuracy_history_.index(best[0])
        self.anchors_ = [layer.weight.detach().cpu() for layer in net.layers]
        self._networks = {}
        self.classifier_ = {k: (v if not isinstance(v, torch.Tensor) else v.cpu())
                            for k, v in clf.state().items()}

    def _fit_classifier_on(self, net, x_tr, y_tr, x_val, y_val):
        with torch.no_grad():
            f_tr = self._batched(net, x_tr)
            f_val = self._batched(net, x_val)
        return self._refit_classifier(f_tr, y_tr, f_val, y_val)

    # ------------------------------------------------------------------ classifier
    def _classifier(self):
        from kernelzoo.classify import LinearClassifier

        self._require_fit()
        return LinearClassifier(**self.classifier_)

    def predict(self, X: Any) -> torch.Tensor:
        """Class labels from the trained network and its classifier.

        Shape: ``(n, ...)`` -> ``(n,)``.

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Numpy or torch, in the kernel's layout.

        Returns
        -------
        torch.Tensor
            Labels.
        """
        with torch.no_grad():
            return self._classifier().predict(self.features(X))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``.

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Images.
        y : array, ``(n,)``
            Labels.

        Returns
        -------
        float
            Accuracy.
        """
        from kernelzoo.classify import accuracy

        return accuracy(self.predict(X).cpu(), np.asarray(y))
