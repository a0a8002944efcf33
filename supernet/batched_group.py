"""One group of a :class:`~supernet.batched.BatchedSearchCell`: every edge leaving the states it
reads (the cell's two inputs, or one later node), each op run once over all of them on stacked
weights, their last batch norms and the mixed sum batched (the module docstring of
:mod:`supernet.batched` says how and why)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import ops
from ops import LayerSpec
from ops.selective_kernel import sk_hidden_width
from ops.shuffle import shuffle_widths
from ops.sync_batchnorm import batch_norm_channels

from .fused_ops import (
    FUSED_OPS,
    SHUFFLE_BOTTLENECK,
    SHUFFLE_GROUPS,
    SK_DILATIONS,
    SK_MIN_HIDDEN,
    SK_REDUCTION,
    FusedDilated,
    FusedSeparable,
    FusedShuffle,
    copy_stacked,
    fusable,
    init_like_linear,
)
from .mixed_op import SEARCH_NORM

#: the parameter-free ops a group computes once per state and shares between its edges
SHARED_OPS = ("skip_connect", "max_pool_3x3", "avg_pool_3x3")


def require_batchable(primitives: Sequence[str]) -> None:
    """Refuse primitives the batched cell does not compute (it computes the fused cell's set,
    :func:`~supernet.fused_ops.fusable`)."""
    if not fusable(primitives):
        raise ValueError(f"batched cells support {sorted(FUSED_OPS) + list(SHARED_OPS)} and "
                         f"none; got primitives {tuple(primitives)}")


def _repeat_states(x: torch.Tensor, states: int, edges: int) -> torch.Tensor:
    """(N, states * C, ...) -> (N, states * edges * C, ...): each state once per edge."""
    per_state = x.unflatten(1, (states, 1, x.shape[1] // states))
    return per_state.expand(-1, -1, edges, *per_state.shape[3:]).flatten(1, 3)


def _norm(spec: LayerSpec, spatial_dims: int, channels: int) -> nn.Module:
    norm = ops.norm_layer(spec, spatial_dims, channels)
    if not isinstance(norm, _BatchNorm):
        # the grouping relies on per-channel statistics over the batch
        raise ValueError(f"batched cells need a batch norm, got {spec!r}")
    return norm


def _copy_statistics(target: nn.Module, sources: Sequence[nn.Module], offset: int = 0) -> None:
    """Copy the running statistics of the norms ``sources`` into ``target``'s channels from
    ``offset`` on (a stacked norm holds several ops' norms)."""
    for key in ("running_mean", "running_var"):
        values = torch.cat([getattr(source, key) for source in sources])
        getattr(target, key)[offset: offset + len(values)] = values


class StackedBatchNorm(nn.Module):
    """The last norm of several ops at once: one batch norm over ``members`` x ``width``
    channels, each member's block its own op's statistics. When some members are not run
    (ops pruned on every edge of the group), only the present members' statistics are used and
    updated, as their own norms would."""

    def __init__(self, spec: LayerSpec, spatial_dims: int, width: int, members: int) -> None:
        super().__init__()
        self.width, self.members = width, members
        self.norm = _norm(spec, spatial_dims, width * members)
        self._indices: dict[tuple, torch.Tensor] = {}

    def _index(self, present: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The channels of the present members, made once per set (no host-to-device copy in
        later steps, nor inside a CUDA graph capture)."""
        key = (present, str(device))
        if key not in self._indices:
            self._indices[key] = torch.tensor(
                [m * self.width + c for m in present for c in range(self.width)], device=device)
        return self._indices[key]

    def forward(self, x: torch.Tensor, present: Sequence[int]) -> torch.Tensor:
        """``x``: (N, len(present), width, ...) -> the same shape, normed."""
        flat = x.flatten(1, 2)
        if len(present) == self.members:
            return self.norm(flat).view_as(x)
        out = batch_norm_channels(self.norm, flat, self._index(tuple(present), x.device))
        return out.view_as(x)


class BatchedGroup(nn.Module):
    """Every candidate op for the ``edges`` edges leaving each of ``states`` states (one state,
    or the cell's two inputs), evaluated together. ``forward`` returns the mixed outputs
    (N, states x edges, channels, ...), edges state-major."""

    def __init__(self, channels: int, states: int, edges: int, spatial_dims: int,
                 primitives: Sequence[str], partial_channels: int = 1,
                 norm: LayerSpec = SEARCH_NORM, act: LayerSpec = "relu",
                 edge_index: Sequence[int] | None = None) -> None:
        super().__init__()
        require_batchable(primitives)
        if channels % partial_channels:
            raise ValueError(f"{channels} channels not divisible by partial_channels="
                             f"{partial_channels}")
        self.primitives = tuple(primitives)
        self.states, self.edges_per_state = states, edges
        self.edges = edges * states
        #: the cell's edge (row of its alphas) of each of the group's edges
        self.edge_index = tuple(range(self.edges) if edge_index is None else edge_index)
        if len(self.edge_index) != self.edges:
            raise ValueError(f"edge_index lists {len(self.edge_index)} edges, not {self.edges}")
        self._indices: dict[tuple, torch.Tensor] = {}  # gathers, made once per device
        self.channels = channels
        self.partial_channels = partial_channels
        self.op_channels = c = channels // partial_channels
        width = self.edges * c
        dims = spatial_dims
        self.act = ops.act_layer(act)
        kinds = {name: FUSED_OPS[name][0] for name in self.primitives if name in FUSED_OPS}
        # the ops whose last layer is a norm, in primitive order: that norm is stacked
        self.normed = tuple(name for name in self.primitives
                            if kinds.get(name) in (FusedSeparable, FusedDilated, FusedShuffle))
        self.final_norm = (StackedBatchNorm(norm, dims, width, len(self.normed))
                           if self.normed else None)
        self.convs = nn.ModuleDict()  # sep / dil: depthwise + pointwise per op
        self.norms = nn.ModuleDict()
        self.shared = nn.ModuleDict({name: ops.build(name, c, 1, dims, norm, act)
                                     for name in self.primitives if name in SHARED_OPS})
        for name, kind in kinds.items():
            _, kernel, dilation = FUSED_OPS[name]
            if kind in (FusedSeparable, FusedDilated):
                parts = [ops.conv(dims, width, width, kernel, 1, dilation, width),
                         ops.conv(dims, width, width, 1, groups=self.edges)]
                if kind is FusedSeparable:  # the first half's norm; the second's is stacked
                    self.norms[name] = _norm(norm, dims, width)
                    parts += [ops.conv(dims, width, width, kernel, groups=width),
                              ops.conv(dims, width, width, 1, groups=self.edges)]
                self.convs[name] = nn.ModuleList(parts)
        if "ghost" in kinds:
            self.ghost_primary = math.ceil(c / 2)
            ghost = self.edges * self.ghost_primary
            self.ghost = nn.ModuleList([ops.conv(dims, states * c, ghost, 1, groups=states),
                                        _norm(norm, dims, ghost),
                                        ops.conv(dims, ghost, ghost, 3, groups=ghost),
                                        _norm(norm, dims, ghost)])
        if "sk" in kinds:
            self.sk_branches = nn.ModuleList(ops.conv(dims, width, width, 3, 1, d, width)
                                              for d in SK_DILATIONS)
            self.sk_norm = _norm(norm, dims, len(SK_DILATIONS) * width)
            hidden = sk_hidden_width(c, SK_REDUCTION, SK_MIN_HIDDEN)
            branches = len(SK_DILATIONS)
            self.sk_squeeze_weight = nn.Parameter(torch.empty(self.edges, c, hidden))
            self.sk_squeeze_bias = nn.Parameter(torch.empty(self.edges, 1, hidden))
            self.sk_expand_weight = nn.Parameter(torch.empty(self.edges, hidden, branches * c))
            self.sk_expand_bias = nn.Parameter(torch.empty(self.edges, 1, branches * c))
            init_like_linear(self.sk_squeeze_weight, self.sk_squeeze_bias, c)
            init_like_linear(self.sk_expand_weight, self.sk_expand_bias, hidden)
        if "shuffle_conv_3x3" in kinds:
            mid, groups = shuffle_widths(c, c, SHUFFLE_GROUPS, SHUFFLE_BOTTLENECK)
            self.shuffle_mid, self.shuffle_groups = mid, groups
            squeezed = self.edges * mid
            # channels of the squeeze conv in its own order: (state, group, edge, channel of group)
            self.shuffle = nn.ModuleList([
                ops.conv(dims, states * c, squeezed, 1, groups=states * groups),
                _norm(norm, dims, squeezed),
                ops.conv(dims, squeezed, squeezed, 3, groups=squeezed),
                _norm(norm, dims, squeezed),
                ops.conv(dims, squeezed, width, 1, groups=self.edges * groups)])

    # -- forward ---------------------------------------------------------------------------

    def _flat_index(self, active: tuple[int, ...], order: tuple[int, ...], ops_count: int,
                    device: torch.device) -> torch.Tensor:
        """Positions in the flattened (cell edges, ops) weights of the ops ``order`` x this
        group's edges: one gather for all of them, made once per set of active ops."""
        key = (active, ops_count, str(device))
        if key not in self._indices:  # op-major: row i holds op order[i] of every edge
            self._indices[key] = torch.tensor([edge * ops_count + op for op in order
                                               for edge in self.edge_index], device=device)
        return self._indices[key]

    def forward(self, inputs: Sequence[torch.Tensor], weights: torch.Tensor,
                edge_weights: torch.Tensor | None, active: Sequence[int]) -> torch.Tensor:
        """``inputs``: the group's states; ``weights``: the cell's (edges, ops) weights;
        ``edge_weights``: the cell's (edges,) or None; ``active``: indices of the ops some edge
        of the group runs. Returns the mixed outputs (N, group edges, channels, ...)."""
        c, n = self.op_channels, inputs[0].shape[0]
        spatial = inputs[0].shape[2:]
        ones = (1,) * len(spatial)
        x = inputs[0] if self.states == 1 else torch.cat(inputs, dim=1)
        if self.partial_channels > 1:  # the ops see each state's first C / K channels
            per_state = x.unflatten(1, (self.states, self.channels))
            bypass = per_state[:, :, c:].unsqueeze(2)  # (N, states, 1, C - C/K, ...)
            x = per_state[:, :, :c].flatten(1, 2)
        cache: dict[str, torch.Tensor] = {}

        def activated() -> torch.Tensor:
            if "act" not in cache:
                cache["act"] = self.act(x)
            return cache["act"]

        def repeated(kind: str) -> torch.Tensor:
            if kind not in cache:
                cache[kind] = _repeat_states(activated() if kind == "act_rep" else x,
                                             self.states, self.edges_per_state)
            return cache[kind]

        normed_in, present, normed_ops, terms, term_ops, shared, shared_ops = ([] for _ in range(7))
        for index in active:  # primitive order, so normed ops come in member order
            name = self.primitives[index]
            if name in self.convs:
                parts = self.convs[name]
                y = parts[1](parts[0](repeated("act_rep")))
                if name in self.norms:  # sep: the second half
                    y = parts[3](parts[2](self.act(self.norms[name](y))))
                normed_in.append(y)
            elif name == "shuffle_conv_3x3":
                normed_in.append(self._shuffle(activated()))
            elif name == "ghost":
                terms.append(self._ghost(x))
            elif name == "sk":
                terms.append(self._sk(repeated("rep")))
            else:
                shared.append(self.shared[name](x))
                shared_ops.append(index)
                continue
            if name in self.normed:
                present.append(self.normed.index(name))
                normed_ops.append(index)
            else:
                term_ops.append(index)
        # one gather of every weight the group needs: (group edges, ops in the order below)
        order = (*normed_ops, *term_ops, *shared_ops)
        if not order:  # every op pruned or none: the edges carry zeros
            out = x.new_zeros((n, self.edges, c) + tuple(spatial))
        else:
            w = weights.flatten().index_select(0, self._flat_index(
                tuple(active), order, weights.shape[1], weights.device)).view(len(order), -1)
            if edge_weights is not None:  # the node sum's edge weight, on the op weights
                w = w * edge_weights.index_select(0, self.edge_index_tensor(weights.device))
            sizes = [len(t) for t in (normed_in, terms, shared)]
            # (ops, edges) per kind: views, whose backward is one concatenation
            blocks = w.split(sizes)
            out = None
            for kind, tensors, op_weights in zip(("normed", "terms", "shared"),
                                                 (normed_in, terms, shared), blocks):
                count = len(tensors)
                if not count:
                    continue
                if kind == "normed":
                    stacked = self.final_norm(torch.stack(tensors, dim=1), present)
                    stacked = stacked.unflatten(2, (self.edges, c))  # (N, ops, edges, C, ...)
                    op_weights = op_weights.view(count, self.edges, 1, *ones)
                elif kind == "terms":
                    stacked = torch.stack(tensors, dim=1).unflatten(2, (self.edges, c))
                    op_weights = op_weights.view(count, self.edges, 1, *ones)
                else:  # one tensor per state, broadcast over its edges
                    stacked = torch.stack(tensors, dim=1).unflatten(2, (self.states, 1, c))
                    op_weights = op_weights.view(count, self.states, self.edges_per_state, 1,
                                                 *ones)
                # in the terms' dtype: under autocast the per-edge mixed op's 0-dim weights
                # keep its sums in bf16, where (edges, ...) fp32 weights would promote them to
                # fp32 and make every conv reading a node cast its input back
                op_weights = op_weights.to(stacked.dtype)
                mixed = (stacked * op_weights).sum(dim=1).reshape(n, self.edges, c, *spatial)
                out = mixed if out is None else out + mixed
        if self.partial_channels > 1:
            # concat with the bypass and PC-DARTS' channel shuffle (K groups) in one stack:
            # channel i of the op part, then channel i of each bypass chunk
            out = out.unflatten(1, (self.states, self.edges_per_state))
            bypass = bypass.expand(-1, -1, self.edges_per_state, *(-1,) * (1 + len(spatial)))
            if edge_weights is not None:  # the edge weight scales the bypass channels too
                scale = edge_weights.index_select(0, self.edge_index_tensor(weights.device))
                bypass = bypass * scale.view(self.states, self.edges_per_state, 1, *ones)
            chunks = [bypass[:, :, :, j * c:(j + 1) * c] for j in range(self.partial_channels - 1)]
            out = torch.stack([out, *chunks], dim=4).reshape(n, self.edges, self.channels,
                                                             *spatial)
        return out

    def edge_index_tensor(self, device: torch.device) -> torch.Tensor:
        key = ("edges", str(device))
        if key not in self._indices:
            self._indices[key] = torch.tensor(self.edge_index, device=device)
        return self._indices[key]

    def _ghost(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, cheap, cheap_norm = self.ghost
        primary = self.act(norm(conv(x)))
        both = torch.cat([primary.unflatten(1, (self.edges, -1)),
                          cheap_norm(cheap(primary)).unflatten(1, (self.edges, -1))], dim=2)
        return (both if both.shape[2] == self.op_channels
                else both[:, :, : self.op_channels]).flatten(1, 2)

    def _sk(self, repeated: torch.Tensor) -> torch.Tensor:
        branches = torch.stack([conv(repeated) for conv in self.sk_branches], dim=1)
        count = len(self.sk_branches)
        branches = self.act(self.sk_norm(branches.flatten(1, 2))).unflatten(1, (count, -1))
        spatial = tuple(range(3, branches.dim()))
        pooled = branches.mean(dim=spatial).sum(dim=1)  # (N, edges x C)
        pooled = pooled.view(-1, self.edges, self.op_channels).transpose(0, 1)  # (E, N, C)
        hidden = self.act(torch.baddbmm(self.sk_squeeze_bias, pooled, self.sk_squeeze_weight))
        attention = torch.baddbmm(self.sk_expand_bias, hidden, self.sk_expand_weight)
        attention = attention.view(self.edges, -1, count, self.op_channels).softmax(dim=2)
        attention = attention.permute(1, 2, 0, 3).reshape(
            attention.shape[1], count, self.edges * self.op_channels, *(1,) * len(spatial))
        return (branches * attention).sum(dim=1)

    def _shuffle(self, activated: torch.Tensor) -> torch.Tensor:
        squeeze, squeeze_norm, spatial, spatial_norm, expand = self.shuffle
        y = spatial_norm(spatial(self.act(squeeze_norm(squeeze(activated)))))
        # (state, group, edge, p) -> (state, edge, p, group): by edge, then ShuffleNet's shuffle
        y = y.unflatten(1, (self.states, self.shuffle_groups, self.edges_per_state, -1))
        y = y.permute(0, 1, 3, 4, 2, *range(5, y.dim())).flatten(1, 4)
        return expand(y)

    # -- weights of per-edge mixed ops -------------------------------------------------------

    @torch.no_grad()
    def load_from(self, mixed_ops: Sequence[nn.Module]) -> None:
        """Copy the weights (and norm statistics) of the per-edge ``MixedOp``s of the group's
        edges, state-major, that this group replaces."""
        def of(name: str) -> list[nn.Module]:
            return [m.ops[self.primitives.index(name)] for m in mixed_ops]

        for name in self.convs:
            modules, parts = of(name), self.convs[name]
            halves = [(m[0], m[1]) for m in modules] if name in self.norms else \
                [(m, None) for m in modules]
            copy_stacked(parts[0].weight, [first[1].weight for first, _ in halves])
            copy_stacked(parts[1].weight, [first[2].weight for first, _ in halves])
            last = [first[3] for first, _ in halves]
            if name in self.norms:
                _copy_statistics(self.norms[name], last)
                copy_stacked(parts[2].weight, [second[1].weight for _, second in halves])
                copy_stacked(parts[3].weight, [second[2].weight for _, second in halves])
                last = [second[3] for _, second in halves]
            self._load_final(name, last)
        if "ghost" in self.primitives:
            modules = of("ghost")
            conv, norm, cheap, cheap_norm = self.ghost
            copy_stacked(conv.weight, [m.primary[0].weight for m in modules])
            _copy_statistics(norm, [m.primary[1] for m in modules])
            copy_stacked(cheap.weight, [m.cheap[0].weight for m in modules])
            _copy_statistics(cheap_norm, [m.cheap[1] for m in modules])
        if "sk" in self.primitives:
            modules = of("sk")
            for b, conv in enumerate(self.sk_branches):
                copy_stacked(conv.weight, [m.branches[b][0].weight for m in modules])
                _copy_statistics(self.sk_norm, [m.branches[b][1] for m in modules],
                         b * self.edges * self.op_channels)
            self.sk_squeeze_weight.copy_(torch.stack([m.squeeze[1].weight.t() for m in modules]))
            self.sk_squeeze_bias.copy_(torch.stack([m.squeeze[1].bias for m in modules])[:, None])
            self.sk_expand_weight.copy_(torch.stack([m.expand.weight.t() for m in modules]))
            self.sk_expand_bias.copy_(torch.stack([m.expand.bias for m in modules])[:, None])
        if "shuffle_conv_3x3" in self.primitives:
            self._load_shuffle(of("shuffle_conv_3x3"))

    def _load_final(self, name: str, norms: Sequence[nn.Module]) -> None:
        width = self.edges * self.op_channels
        _copy_statistics(self.final_norm.norm, norms, self.normed.index(name) * width)

    def _load_shuffle(self, modules: Sequence[nn.Module]) -> None:
        squeeze, squeeze_norm, spatial, spatial_norm, expand = self.shuffle
        g, k = self.shuffle_groups, self.edges_per_state
        per_group = self.shuffle_mid // g
        # channel (state, group j, edge, p) of the batched squeeze is channel j * per_group + p
        # of its edge's squeeze conv, and channel p * g + j of its edge's (shuffled) spatial conv
        squeeze_order, shuffled_order = [], []
        for s in range(self.states):
            for j in range(g):
                for e in range(k):
                    edge = s * k + e
                    for p in range(per_group):
                        squeeze_order.append((edge, j * per_group + p))
                        shuffled_order.append((edge, p * g + j))

        def gather(tensors: Sequence[torch.Tensor], order) -> torch.Tensor:
            return torch.stack([tensors[edge][channel] for edge, channel in order])

        squeeze.weight.copy_(gather([m.squeeze[1].weight for m in modules], squeeze_order))
        spatial.weight.copy_(gather([m.spatial[0].weight for m in modules], shuffled_order))
        for key in ("running_mean", "running_var"):
            getattr(squeeze_norm, key).copy_(
                gather([getattr(m.squeeze[2], key) for m in modules], squeeze_order))
            getattr(spatial_norm, key).copy_(
                gather([getattr(m.spatial[1], key) for m in modules], shuffled_order))
        copy_stacked(expand.weight, [m.expand[0].weight for m in modules])
        self._load_final("shuffle_conv_3x3", [m.expand[1] for m in modules])
