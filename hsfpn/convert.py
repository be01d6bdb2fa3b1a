"""Convert checkpoints saved with the authors' HS-FPN release to this package's parameter names.

Release names (REFERENCE.md section 1; p1..p4 are the paper's P2..P5, strides 4..32) and ours:

================================================  ==============================================
release                                           ours
================================================  ==============================================
``lateral_convs.{i}.*``, ``fpn_convs.{i}.*``      unchanged (both are MMDetection's FPN)
``SelfAttn_p{j}.spatial.spatial1x1.0.conv.weight``  ``hfps.{j-1}.spatial_path.mask_conv.conv.weight``
``SelfAttn_p{j}.channel.channel1x1.0.conv.weight``  ``hfps.{j-1}.channel_path.score_conv.conv.weight``
``SelfAttn_p{j}.channel.channel2x1.0.conv.weight``  ``hfps.{j-1}.channel_path.weight_conv.conv.weight``
``SelfAttn_p{j}.out.0.conv.{weight,bias}``          ``hfps.{j-1}.fuse.conv.{weight,bias}``
``SelfAttn_p{j}.out.1.{weight,bias}`` (GN)          ``hfps.{j-1}.fuse.gn.{weight,bias}``
``CrossAtten_p{j+1}_p{j}.conv_q.0.conv.weight``     ``sdps.{j-1}.query_proj.conv.weight``
``CrossAtten_p{j+1}_p{j}.conv_q.1.{weight,bias}``   ``sdps.{j-1}.query_proj.gn.{weight,bias}``
``... .conv_k ...``                                 ``sdps.{j-1}.key_proj ...``
================================================  ==============================================

A full detector checkpoint (``{'state_dict': {'neck.…', 'backbone.…'}, 'meta': …}``) has only its ``neck.``
keys renamed; a bare neck state dict has every key renamed. The result is checked by building an
:class:`hsfpn.nn.HSFPN` of the inferred shape and loading it with ``strict=True``. The converted names are those
of both :class:`hsfpn.nn.HSFPN` and the MMDetection neck :class:`hsfpn.neck.HSFPN`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dotamini10.io import atomic_path

from .errors import HSFPNError

__all__ = [
    "CheckpointConversionError",
    "ConversionReport",
    "convert_checkpoint",
    "convert_neck_state_dict",
    "infer_neck_config",
    "load_release_state_dict",
]

logger = logging.getLogger(__name__)

_P = r"SelfAttn_p(?P<j>[1-9]\d*)"
_X = r"CrossAtten_p(?P<a>[1-9]\d*)_p(?P<j>[1-9]\d*)"
# (pattern, our name template): the template is formatted with the level index i = j - 1 and the groups.
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^{_P}\.spatial\.spatial1x1\.0\.conv\.weight$"), "hfps.{i}.spatial_path.mask_conv.conv.weight"),
    (re.compile(rf"^{_P}\.channel\.channel1x1\.0\.conv\.weight$"), "hfps.{i}.channel_path.score_conv.conv.weight"),
    (re.compile(rf"^{_P}\.channel\.channel2x1\.0\.conv\.weight$"), "hfps.{i}.channel_path.weight_conv.conv.weight"),
    (re.compile(rf"^{_P}\.out\.0\.conv\.(?P<p>weight|bias)$"), "hfps.{i}.fuse.conv.{p}"),
    (re.compile(rf"^{_P}\.out\.1\.(?P<p>weight|bias)$"), "hfps.{i}.fuse.gn.{p}"),
    (re.compile(rf"^{_X}\.conv_q\.0\.conv\.weight$"), "sdps.{i}.query_proj.conv.weight"),
    (re.compile(rf"^{_X}\.conv_q\.1\.(?P<p>weight|bias)$"), "sdps.{i}.query_proj.gn.{p}"),
    (re.compile(rf"^{_X}\.conv_k\.0\.conv\.weight$"), "sdps.{i}.key_proj.conv.weight"),
    (re.compile(rf"^{_X}\.conv_k\.1\.(?P<p>weight|bias)$"), "sdps.{i}.key_proj.gn.{p}"),
]
_FPN_KEY = re.compile(r"^(lateral_convs|fpn_convs)\.\d+\.")


class CheckpointConversionError(HSFPNError):
    """A checkpoint that is not a release HS-FPN checkpoint (unknown, missing or mis-shaped entries)."""


@dataclass
class ConversionReport:
    """What :func:`convert_checkpoint` did.

    Attributes:
        source (Path): The release checkpoint read.
        destination (Path): The converted checkpoint written.
        layout (str): ``'detector'`` (keys under ``neck.``) or ``'neck'`` (a bare neck state dict).
        renamed (int): Neck entries whose name changed.
        unchanged (int): Entries kept as they were (FPN convs and the rest of the detector).
        neck_config (dict): The HSFPN arguments inferred from the weights and used for the strict load.
        dropped (list[str]): Top-level checkpoint entries not carried over (e.g. ``optimizer``).
    """

    source: Path
    destination: Path
    layout: str
    renamed: int
    unchanged: int
    neck_config: dict[str, Any]
    dropped: list[str] = field(default_factory=list)


def _rename(key: str) -> str | None:
    """Our name for one release neck key, the key itself for FPN convs, None when unknown."""
    if _FPN_KEY.match(key):
        return key
    for pattern, template in _RULES:
        m = pattern.match(key)
        if m is None:
            continue
        groups = m.groupdict()
        j = int(groups["j"])
        if "a" in groups and int(groups["a"]) != j + 1:
            return None  # SDP modules only join adjacent levels
        return template.format(i=j - 1, p=groups.get("p"))
    return None


def convert_neck_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a bare release neck state dict to this package's names (values are not copied).

    Args:
        state (Mapping[str, Tensor]): Release neck state dict (no ``neck.`` prefix).

    Returns:
        dict[str, Tensor]: The same tensors under our names, in the input order.

    Raises:
        CheckpointConversionError: When keys are not release neck names (all of them are named).
    """
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        new = _rename(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise CheckpointConversionError(f"not HS-FPN release neck keys: {', '.join(sorted(unknown))}")
    return out


def infer_neck_config(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """HSFPN constructor arguments that reproduce the shapes of a converted neck state dict.

    Args:
        state (Mapping[str, Tensor]): Converted neck state dict (our names).

    Returns:
        dict[str, Any]: ``in_channels``, ``out_channels``, ``num_outs``, ``add_extra_convs``, ``channel_path``,
        ``spatial_path``, ``sdp``, ``dct_levels``, ``channel_fusion`` (the ``type`` key is not included).

    Raises:
        CheckpointConversionError: When the lateral convs are missing or have gaps.
    """
    lateral = sorted(int(k.split(".")[1]) for k in state if re.match(r"^lateral_convs\.\d+\.conv\.weight$", k))
    if not lateral or lateral != list(range(len(lateral))):
        raise CheckpointConversionError(
            f"lateral_convs.N.conv.weight entries missing or not numbered 0..N-1 (found {lateral})"
        )
    levels = len(lateral)
    in_channels = [int(state[f"lateral_convs.{i}.conv.weight"].shape[1]) for i in range(levels)]
    out_channels = int(state["lateral_convs.0.conv.weight"].shape[0])
    outs = {int(k.split(".")[1]) for k in state if k.startswith("fpn_convs.")}
    num_outs = max(levels, max(outs) + 1) if outs else levels
    add_extra: bool | str = False
    first_extra = state.get(f"fpn_convs.{levels}.conv.weight")
    if first_extra is not None:
        # An extra conv reading the backbone's last map has its channels; otherwise it reads a neck map.
        on_input = first_extra.shape[1] == in_channels[-1] and in_channels[-1] != out_channels
        add_extra = "on_input" if on_input else "on_output"
    has_hfp = any(k.startswith("hfps.") for k in state)
    cp = any(".channel_path." in k for k in state)
    sp_conv_levels = {int(k.split(".")[1]) for k in state if ".spatial_path.mask_conv." in k}
    sp = bool(sp_conv_levels) or (has_hfp and not cp)
    fusion = "sum"
    w = state.get("hfps.0.channel_path.weight_conv.conv.weight")
    if w is not None and w.shape[1] * 32 == 2 * out_channels:
        fusion = "concat"
    # The release's spatial mask conv exists exactly at the non-DCT levels.
    dct_levels = tuple(i for i in range(levels) if i not in sp_conv_levels) if sp else tuple(range(min(2, levels)))
    return dict(
        in_channels=in_channels,
        out_channels=out_channels,
        num_outs=num_outs,
        add_extra_convs=add_extra,
        channel_path=cp,
        spatial_path=sp,
        sdp=any(k.startswith("sdps.") for k in state),
        dct_levels=dct_levels,
        channel_fusion=fusion,
    )


def load_release_state_dict(neck: torch.nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a release-named neck state dict into an HS-FPN neck with ``strict=True``.

    Args:
        neck (torch.nn.Module): The neck to fill: :class:`hsfpn.nn.HSFPN` or :class:`hsfpn.neck.HSFPN`.
        state (Mapping[str, Tensor]): Release neck state dict.

    Raises:
        CheckpointConversionError: Naming every unknown, missing, unexpected or mis-shaped entry.
    """
    converted = convert_neck_state_dict(state)
    own = neck.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    shapes = sorted(
        f"{k} {tuple(converted[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(converted)
        if converted[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected: {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {', '.join(shapes)}")
    if problems:
        raise CheckpointConversionError("release neck does not fit this HSFPN; " + "; ".join(problems))
    neck.load_state_dict(converted, strict=True)


def _verify(neck_state: Mapping[str, Tensor]) -> dict[str, Any]:
    from .nn import HSFPN  # plain PyTorch: converting needs no MMDetection

    config = infer_neck_config(neck_state)
    plain = all(re.search(r"\.conv\.(weight|bias)$", k) for k in neck_state if _FPN_KEY.match(k))
    if not plain:
        # Normalised lateral/output convs: their norm config is not recoverable from the names alone.
        logger.warning("lateral/fpn convs carry norm layers: strict load check limited to the HS-FPN modules")
        return config
    if not (config["channel_path"] or config["spatial_path"] or config["sdp"]):
        raise CheckpointConversionError("no HS-FPN modules (SelfAttn_p*/CrossAtten_*) in the neck weights")
    neck = HSFPN(**config)
    own = neck.state_dict()
    missing = sorted(set(own) - set(neck_state))
    unexpected = sorted(set(neck_state) - set(own))
    if missing or unexpected:
        raise CheckpointConversionError(
            "incomplete release neck: "
            + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                    f"unexpected {', '.join(unexpected)}" if unexpected else "") if p)
        )
    try:
        neck.load_state_dict(dict(neck_state), strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointConversionError(f"release neck weights do not load: {exc}".splitlines()[0]) from None
    return config


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> ConversionReport:
    """Read a release checkpoint, rename its neck entries, check them with a strict load, write ``dst``.

    Args:
        src (str | os.PathLike): Release checkpoint (a detector checkpoint or a bare neck state dict).
        dst (str | os.PathLike): Output path (written atomically: temp file + rename).

    Returns:
        ConversionReport: Counts, layout and the inferred neck config.

    Raises:
        CheckpointConversionError: Unreadable file, no neck entries, unknown or missing entries (named).

    Notes:
        Only tensors and plain containers are unpickled (``weights_only=True``). ``meta`` and every other
        top-level entry are kept except ``optimizer``, whose per-parameter state follows the release's
        parameter order and would not match. ``meta['hsfpn_converted_from']`` records the source file name.
    """
    from .checkpoints import load_weights_file

    src, dst = Path(src), Path(dst)
    ckpt = load_weights_file(src, error=CheckpointConversionError)
    if not isinstance(ckpt, Mapping):
        raise CheckpointConversionError(f"{src}: expected a dict checkpoint, got {type(ckpt).__name__}")
    nested = "state_dict" in ckpt and isinstance(ckpt["state_dict"], Mapping)
    state = ckpt["state_dict"] if nested else ckpt
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointConversionError(f"{src}: state dict entries that are not tensors: {', '.join(bad)}")
    prefixed = any(k.startswith("neck.") for k in state)
    layout = "detector" if prefixed or nested else "neck"
    if layout == "detector" and not prefixed:
        raise CheckpointConversionError(f"{src}: detector checkpoint without neck.* entries")

    if prefixed:
        neck_state = {k[len("neck."):]: v for k, v in state.items() if k.startswith("neck.")}
    else:
        neck_state = dict(state)
    converted = convert_neck_state_dict(neck_state)
    config = _verify(converted)
    renamed = sum(1 for k in neck_state if _rename(k) != k)

    if prefixed:
        new_state: dict[str, Tensor] = {}
        for k, v in state.items():
            new_state[f"neck.{_rename(k[5:])}" if k.startswith("neck.") else k] = v
    else:
        new_state = converted
    dropped: list[str] = []
    if nested:
        out: dict[str, Any] = {}
        for k, v in ckpt.items():
            if k == "optimizer":
                dropped.append(k)
                continue
            out[k] = new_state if k == "state_dict" else v
        meta = dict(out.get("meta") or {})
        meta["hsfpn_converted_from"] = src.name
        out["meta"] = meta
    else:
        out = new_state  # type: ignore[assignment]

    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        torch.save(out, tmp)
    return ConversionReport(
        source=src,
        destination=dst,
        layout=layout,
        renamed=renamed,
        unchanged=len(state) - renamed,
        neck_config=config,
        dropped=dropped,
    )
