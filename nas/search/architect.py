"""The bilevel architecture step (DARTS): alphas by Adam on the validation loss.

First order treats the weights as constants. Second order differentiates through one virtual
SGD step of the weights, w' = w - xi * (momentum buffer * mu + grad + wd * w), and approximates
the implicit term  xi * d2 L_train / (d alpha d w) . dL_val/dw'  by a central finite difference
(DARTS eq. 8). Weights and buffers are restored in place after the virtual step, so no copy of
the model is made.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch
from torch import nn

LossFunction = Callable[[nn.Module, Any], torch.Tensor]


class Architect:
    """Owns the architecture optimiser. ``train_loss(model, batch)`` is the weights' loss;
    ``val_loss(model, batch)`` the alphas' loss (segmentation loss plus cost penalties)."""

    def __init__(self, model: nn.Module, train_loss: LossFunction, val_loss: LossFunction,
                 arch_lr: float = 6e-4, arch_betas: tuple[float, float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-3, order: int = 1,
                 finite_difference_eps: float = 0.01,
                 reduce_hook: Callable[[list[torch.Tensor]], None] | None = None,
                 capturable: bool = False) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (first order) or 2 (unrolled), got {order!r}")
        self.model = model
        self.train_loss = train_loss
        self.val_loss = val_loss
        self.order = order
        self.eps = finite_difference_eps
        # averages a list of tensors over ranks in place (multi-process runs): applied to the
        # alphas' gradients before each update and, in the second-order step, to the virtual
        # step's weight gradients and to dL_val/dw', so every rank keeps identical alphas
        self.reduce_hook = reduce_hook or (lambda tensors: None)
        self.arch_params = list(model.arch_parameters())
        self.weight_params = [p for p in model.weight_parameters() if p.requires_grad]
        # capturable: Adam keeps its step count on the device, so a CUDA graph can replay it
        self.capturable = capturable
        self.optimizer = torch.optim.Adam(self.arch_params, lr=arch_lr, betas=arch_betas,
                                          weight_decay=arch_weight_decay, capturable=capturable)

    def state_dict(self) -> dict:
        """Adam's state in one layout whether or not it is capturable (step counts on the CPU,
        ``capturable`` False), so a checkpoint resumes with or without ``--cuda-graph``."""
        state = self.optimizer.state_dict()
        return {"state": {index: {**values, "step": values["step"].detach().float().cpu()}
                          if "step" in values else values
                          for index, values in state["state"].items()},
                "param_groups": [{**group, "capturable": False} for group in state["param_groups"]]}

    def load_state_dict(self, state: dict) -> None:
        # the saved groups' flags would replace this optimizer's: keep its own capturable
        # (Adam then moves the step counts to the parameters' device where it is capturable)
        groups = [{**group, "capturable": self.capturable} for group in state["param_groups"]]
        self.optimizer.load_state_dict({**state, "param_groups": groups})

    def step(self, train_batch: Any, val_batch: Any,
             weight_optimizer: torch.optim.Optimizer | None = None) -> torch.Tensor:
        """One update of the alphas; returns the validation loss (detached). Every forward of
        the step runs without drop-path (``model.without_drop_path()``, where the model has
        it): the alphas are judged on the network a genotype derives, all paths present."""
        with getattr(self.model, "without_drop_path", nullcontext)():
            return self._step(train_batch, val_batch, weight_optimizer)

    def _step(self, train_batch: Any, val_batch: Any,
              weight_optimizer: torch.optim.Optimizer | None) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        if self.order == 1:
            loss = self.val_loss(self.model, val_batch)
            grads = torch.autograd.grad(loss, self.arch_params, allow_unused=True)
        else:
            if weight_optimizer is None:
                raise ValueError("the second-order step needs the weight optimiser (its lr, "
                                 "momentum and weight decay define the virtual step)")
            loss, grads = self._unrolled_gradients(train_batch, val_batch, weight_optimizer)
        for param, grad in zip(self.arch_params, grads):
            param.grad = torch.zeros_like(param) if grad is None else grad.detach()
        self.reduce_hook([p.grad for p in self.arch_params])
        self.optimizer.step()
        return loss.detach()

    # second order -------------------------------------------------------------------------

    def _snapshot(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        buffers = [b for b in self.model.buffers() if b.dtype.is_floating_point
                   or b.dtype == torch.long]
        return ([p.detach().clone() for p in self.weight_params],
                [b.detach().clone() for b in buffers])

    def _restore(self, snapshot) -> None:
        weights, buffer_values = snapshot
        buffers = [b for b in self.model.buffers() if b.dtype.is_floating_point
                   or b.dtype == torch.long]
        with torch.no_grad():
            torch._foreach_copy_(self.weight_params, weights)
            for buffer, value in zip(buffers, buffer_values):
                buffer.copy_(value)

    @staticmethod
    def _sgd_hyperparameters(optimizer: torch.optim.Optimizer) -> tuple[float, float, float]:
        group = optimizer.param_groups[0]
        return group["lr"], group.get("momentum", 0.0), group.get("weight_decay", 0.0)

    def _unrolled_gradients(self, train_batch, val_batch, weight_optimizer):
        lr, momentum, weight_decay = self._sgd_hyperparameters(weight_optimizer)
        snapshot = self._snapshot()
        try:
            train = self.train_loss(self.model, train_batch)
            grads = [torch.zeros_like(p) if g is None else g for p, g in
                     zip(self.weight_params, torch.autograd.grad(train, self.weight_params,
                                                                 allow_unused=True))]
            self.reduce_hook(grads)
            with torch.no_grad():
                for param, grad in zip(self.weight_params, grads):
                    step = grad.clone()
                    step.add_(param, alpha=weight_decay)
                    buffer = weight_optimizer.state.get(param, {}).get("momentum_buffer")
                    if buffer is not None and momentum:
                        step.add_(buffer, alpha=momentum)
                    param.sub_(step, alpha=lr)
            loss = self.val_loss(self.model, val_batch)
            grads = torch.autograd.grad(loss, self.arch_params + self.weight_params,
                                        allow_unused=True)
            arch_grads = list(grads[: len(self.arch_params)])
            vector = [torch.zeros_like(p) if g is None else g
                      for p, g in zip(self.weight_params, grads[len(self.arch_params):])]
            self.reduce_hook(vector)
            self._restore(snapshot)
            implicit = self.hessian_vector_product(vector, train_batch)
            arch_grads = [None if g is None else g - lr * h
                          for g, h in zip(arch_grads, implicit)]
        finally:
            self._restore(snapshot)
        return loss, arch_grads

    def hessian_vector_product(self, vector: Sequence[torch.Tensor], train_batch: Any
                               ) -> list[torch.Tensor]:
        """(d/d alpha) (dL_train/dw . vector) by a central difference in w along ``vector``,
        with step R = eps / ||vector|| (DARTS). Weights are left as they were. R stays on the
        device (no host synchronisation: the step can be captured as a CUDA graph)."""
        norm = torch.sqrt(sum((v.double() ** 2).sum() for v in vector))
        radius = self.eps / norm.clamp_min(1e-12)
        snapshot = self._snapshot()
        with torch.no_grad():
            displacement = torch._foreach_mul(list(vector), radius)  # once: -(v R) is v (-R) exactly
        try:
            gradients = []
            for sign in (1.0, -1.0):
                self._restore(snapshot)
                with torch.no_grad():
                    torch._foreach_add_(self.weight_params, displacement, alpha=sign)
                loss = self.train_loss(self.model, train_batch)
                gradients.append(torch.autograd.grad(loss, self.arch_params, allow_unused=True))
        finally:
            self._restore(snapshot)
        return [torch.zeros_like(p) if plus is None else (plus - minus) / (2 * radius)
                for p, plus, minus in zip(self.arch_params, *gradients)]
