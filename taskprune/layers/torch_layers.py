"""The layer kinds of torch.nn: convolutions (plain, transposed, depthwise, grouped), linear, norms, PReLU and
embeddings."""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from .kind import LayerKind, ParamDims

__all__ = ["TORCH_LAYER_KINDS"]

_Conv = nn.modules.conv._ConvNd


def _own_params(module: nn.Module, channels: int) -> list[str]:
    return [name for name, param in module.named_parameters(recurse=False)
            if name not in ("weight", "bias") and param.dim() >= 1 and param.shape[0] == channels]


def _conv_own(module: nn.Module) -> list[str]:
    conv = cast(_Conv, module)
    return [] if conv.transposed else _own_params(conv, conv.out_channels)


def _conv_channels(module: nn.Module) -> tuple[int, int]:
    conv = cast(_Conv, module)
    return conv.in_channels, conv.out_channels


def _conv_dims(module: nn.Module, is_out: bool) -> ParamDims:
    conv = cast(_Conv, module)
    depthwise = conv.groups == conv.out_channels and conv.groups > 1
    if is_out or depthwise:
        weight_dim = 1 if conv.transposed and not depthwise else 0  # a transposed weight is [in, out, ...]
        return [("weight", weight_dim), ("bias", 0), *((own, 0) for own in _conv_own(conv))]
    if conv.groups == 1:
        return [("weight", 0 if conv.transposed else 1)]
    return []  # a grouped convolution's input channels are spread over its groups


def _resized_conv(module: nn.Module, c_in: int, c_out: int, groups: int = 1,
                  output_padding: bool = False) -> nn.Module:
    conv = cast(_Conv, module)
    kwargs: dict[str, Any] = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                                  groups=groups, bias=conv.bias is not None)
    if output_padding:
        kwargs["output_padding"] = conv.output_padding
    return type(conv)(c_in, c_out, conv.kernel_size, **kwargs)


def _plain_conv(module: nn.Module) -> bool:
    conv = cast(_Conv, module)
    return conv.groups == 1 and not conv.transposed


def _transposed_conv(module: nn.Module) -> bool:
    conv = cast(_Conv, module)
    return conv.groups == 1 and bool(conv.transposed)


def _depthwise_conv(module: nn.Module) -> bool:
    conv = cast(_Conv, module)
    return 1 < conv.groups == conv.in_channels == conv.out_channels


def _grouped_conv(module: nn.Module) -> bool:
    return cast(_Conv, module).groups > 1


def _grouped_kept_whole(module: nn.Module, name: str) -> str:
    conv = cast(_Conv, module)
    if 1 < conv.groups < conv.out_channels:
        return f"grouped convolution {name} (groups={conv.groups}) is kept whole"
    return ""


def _group_norm_kept_whole(module: nn.Module, name: str) -> str:
    norm = cast(nn.GroupNorm, module)
    if 1 < norm.num_groups < norm.num_channels:
        return (f"GroupNorm {name} normalises {norm.num_groups} groups of channels; removing one channel "
                "breaks them")
    return ""


def _linear_dims(module: nn.Module, is_out: bool) -> ParamDims:
    if not is_out:
        return [("weight", 1)]
    linear = cast(nn.Linear, module)
    return [("weight", 0), ("bias", 0), *((own, 0) for own in _own_params(linear, linear.out_features))]


def _fixed(*dims: tuple[str, int]) -> Any:
    return lambda _module, _is_out: dims


def _norm_channels(module: nn.Module) -> tuple[int, int]:
    features = cast(nn.modules.batchnorm._BatchNorm, module).num_features
    return features, features


def _group_norm_channels(module: nn.Module) -> tuple[int, int]:
    channels = cast(nn.GroupNorm, module).num_channels
    return channels, channels


def _linear_channels(module: nn.Module) -> tuple[int, int]:
    linear = cast(nn.Linear, module)
    return linear.in_features, linear.out_features


def _linear_own(module: nn.Module) -> list[str]:
    return _own_params(module, cast(nn.Linear, module).out_features)


def _resized_linear(module: nn.Module, c_in: int, c_out: int) -> nn.Module:
    return nn.Linear(c_in, c_out, bias=cast(nn.Linear, module).bias is not None)


def _several_prelu(module: nn.Module) -> bool:
    return cast(nn.PReLU, module).num_parameters > 1


TORCH_LAYER_KINDS = (
    LayerKind("conv", (_Conv,), _conv_dims, when=_plain_conv,
              channels=_conv_channels, own_params=_conv_own, per_channel="bias", timed=True, weight_in_dim=1,
              resize=_resized_conv),
    LayerKind("conv_transpose", (_Conv,), _conv_dims, when=_transposed_conv,
              channels=_conv_channels, own_params=_conv_own, per_channel="bias", timed=True, weight_in_dim=0,
              resize=lambda m, c_in, c_out: _resized_conv(m, c_in, c_out, output_padding=True)),
    LayerKind("depthwise", (_Conv,), _conv_dims, when=_depthwise_conv,
              channels=_conv_channels, own_params=_conv_own, per_channel="bias", timed=True, tied=True,
              resize=lambda m, c_in, c_out: _resized_conv(m, c_in, c_out, groups=c_out)),
    LayerKind("grouped_conv", (_Conv,), _conv_dims, when=_grouped_conv, channels=_conv_channels,
              own_params=_conv_own, keep_whole=_grouped_kept_whole, per_channel="bias"),
    LayerKind("linear", (nn.Linear,), _linear_dims,
              channels=_linear_channels, per_channel="bias", timed=True, input_dim=-1, weight_in_dim=1,
              own_params=_linear_own, resize=_resized_linear),
    LayerKind("norm", (nn.modules.batchnorm._BatchNorm,), _fixed(("weight", 0), ("bias", 0)),
              channels=_norm_channels, per_channel="weight", timed=True, tied=True,
              resize=lambda m, _c_in, c_out: type(m)(c_out)),
    LayerKind("group_norm", (nn.GroupNorm,), _fixed(("weight", 0), ("bias", 0)),
              channels=_group_norm_channels, keep_whole=_group_norm_kept_whole,
              per_channel="weight", tied=True),
    LayerKind("instance_norm", (nn.modules.instancenorm._InstanceNorm,), _fixed(("weight", 0), ("bias", 0)),
              channels=_norm_channels, tied=True),
    LayerKind("layer_norm", (nn.LayerNorm,), _fixed(("weight", -1), ("bias", -1)), tied=True),
    LayerKind("prelu", (nn.PReLU,), _fixed(("weight", 0)), when=_several_prelu, tied=True),
    LayerKind("embedding", (nn.Embedding,), _fixed(("weight", 1))),
)
