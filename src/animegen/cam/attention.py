"""Grad-CAM maps inside a training step (CycleGAN + CAM, study C): torch-native, on the model's device.

The ``grad-cam`` library (:mod:`animegen.cam.gradcam`, used for selection and overlays) returns numpy
maps resized to the input and switches the model to eval mode on every call; a generator or
discriminator that is multiplied by the map of each batch wants neither a host round trip nor the
resize.  Grad-CAM itself is ten lines: the target layer's activations ``A``, the gradient of the class
logit with respect to them, the channel weights ``w = mean_xy(dlogit/dA)`` and ``ReLU(sum_c w_c A_c)``,
here min-max scaled per image to [0, 1] as the library's ``scale_cam_image`` does (and at the layer's
own resolution: the model resizes it to each feature map).  The classifier is frozen (no parameter
needs a gradient) and the activations are cut from the input's graph, so no gradient reaches the
classifier or whatever made the images.
"""

from __future__ import annotations

import torch
from torch import nn

from animegen.cam import classifier as clf


class GradCamMaps:
    """``maps(x, domain)``: the normalised Grad-CAM of ``x`` (float in [-1, 1]) for ``domain``'s class.

    ``classes`` maps a domain name (``"a"``, ``"b"``) to the classifier's class index of that domain.
    """

    def __init__(self, net: nn.Module, layer: nn.Module, arch: str, classes: dict[str, int]):
        self.net, self.layer, self.arch, self.classes = net, layer, arch, dict(classes)
        for p in net.parameters():
            if p.requires_grad:
                raise ValueError("the CAM classifier must be frozen (requires_grad False on every parameter)")

    def __call__(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.maps(x, domain)

    def maps(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """(B, 1, h, w) in [0, 1] at the target layer's resolution."""
        target = self.classes[domain]
        captured: list[torch.Tensor] = []

        def hook(_module, _inputs, output):
            a = output.detach().requires_grad_(True)  # a leaf: the graph starts here
            captured.append(a)
            return a

        handle = self.layer.register_forward_hook(hook)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.enable_grad():
                logits = self.net(clf.prepare_float(x.detach().add(1.0).div(2.0), self.arch))
                (grad,) = torch.autograd.grad(logits[:, target].sum(), captured[0])
        finally:
            handle.remove()
            self.net.train(was_training)
        a = captured[0].detach()
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * a).sum(dim=1, keepdim=True))
        lo = cam.amin(dim=(2, 3), keepdim=True)
        cam = cam - lo
        return cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-7)
