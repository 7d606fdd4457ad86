"""Saliency maps against closed forms: Grad-CAM and Grad-CAM++ on models whose maps follow from
the chain rule by hand, and integrated gradients' completeness (exact for a linear model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionbench.explain import explain_images, saliency
from visionbench.explain.layers import last_conv_stage


def linear_cam_model(weights: torch.Tensor, channels: int) -> nn.Sequential:
    """Identity 1x1 convolution (A = x) → global average pool → linear layer with ``weights`` ``[K, C]``, float64."""
    conv = nn.Conv2d(channels, channels, 1, bias=False).double()
    linear = nn.Linear(channels, weights.shape[0]).double()  # float64 before the copy: no float32 rounding
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        linear.weight.copy_(weights)
        linear.bias.fill_(0.25)
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def test_gradcam_by_hand_on_a_two_by_two_map() -> None:
    """One channel A = [[1, 2], [3, 4]], logits y_c = w_c * mean(A): dy_0/dA = 2/4 = 0.5 at every
    position, so Grad-CAM is ReLU(0.5 A) = [[0.5, 1], [1.5, 2]]; for w_1 = -1 it is ReLU(-A/4) = 0.
    Grad-CAM++: a = g²/(2g² + sum(A) g³) = 1/(2 + 10 * 0.5) = 1/7, w = 4 * a * ReLU(0.5) = 2/7, map (2/7) A."""
    model = linear_cam_model(torch.tensor([[2.0], [-1.0]], dtype=torch.float64), 1)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    layer = model[0]
    acts, (g0, g1), _ = saliency.layer_gradients(model, layer, x, [saliency.classification_score([0]),
                                                                  saliency.classification_score([1])])
    assert torch.equal(saliency.gradcam(acts, g0), torch.tensor([[[0.5, 1.0], [1.5, 2.0]]], dtype=torch.float64))
    assert torch.equal(saliency.gradcam(acts, g1), torch.zeros(1, 2, 2, dtype=torch.float64))
    torch.testing.assert_close(saliency.gradcam_plus_plus(acts, g0), 2 / 7 * x[:, 0], rtol=0, atol=1e-15)


def test_gradcam_equals_its_closed_form_for_a_pooled_linear_head() -> None:
    """With A = x [C, H, W], z = mean_ij A and y = W z + b: dy_c/dA_kij = W_ck / (HW) everywhere, so
    alpha_ck = W_ck / (HW) and Grad-CAM_c = ReLU(sum_k W_ck / (HW) * A_k)."""
    torch.manual_seed(0)
    channels, height, width = 3, 5, 7
    weights = torch.randn(4, channels, dtype=torch.float64)
    model = linear_cam_model(weights, channels)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    targets = [1, 3]
    acts, (grads,), _ = saliency.layer_gradients(model, model[0], x, [saliency.classification_score(targets)])
    expected = torch.stack([torch.relu(torch.einsum("k,khw->hw", weights[c] / (height * width), x[b]))
                            for b, c in enumerate(targets)])
    torch.testing.assert_close(saliency.gradcam(acts, grads), expected, rtol=1e-12, atol=1e-15)
    # The whole path: the layer is found, the maps are normalised to [0, 1] by their maxima.
    assert last_conv_stage(model, x[:1]) == "0"
    result = explain_images(model, x, targets=targets)
    assert result.layer == "0" and [e.target for e in result.explanations] == targets
    with pytest.raises(ValueError, match=r"target classes \[4, 0\] must lie in 0\.\.3: the model has 4 classes"):
        explain_images(model, x, targets=[4, 0])
    for explanation, cam in zip(result.explanations, expected, strict=True):
        torch.testing.assert_close(explanation.heatmap, cam / cam.max(), rtol=1e-12, atol=1e-15)


def test_gradcam_plus_plus_equals_its_closed_form_for_a_pooled_linear_head() -> None:
    """Same model, positive activations: g_k = W_ck / (HW) at every position and S_k = sum_ij A_kij, so
    a_k = g_k² / (2 g_k² + S_k g_k³) = 1 / (2 + S_k g_k), w_k = HW a_k ReLU(g_k) and the map is ReLU(sum_k w_k A_k)."""
    torch.manual_seed(1)
    channels, height, width = 4, 6, 3
    weights = torch.randn(3, channels, dtype=torch.float64)
    model = linear_cam_model(weights, channels)
    x = torch.rand(1, channels, height, width, dtype=torch.float64) + 0.1
    for target in range(3):
        acts, (grads,), _ = saliency.layer_gradients(model, model[0], x, [saliency.classification_score([target])])
        g = weights[target] / (height * width)
        sums = x[0].sum(dim=(1, 2))
        w = height * width * torch.relu(g) / (2 + sums * g)
        expected = torch.relu(torch.einsum("k,khw->hw", w, x[0]))[None]
        torch.testing.assert_close(saliency.gradcam_plus_plus(acts, grads), expected, rtol=1e-12, atol=1e-15)


def test_segmentation_gradcam_follows_the_predicted_region() -> None:
    """A = x, logits = 1x1 head W [K, C]; the score of class c is the sum of its logit over its
    predicted region R, so dy/dA_k(p) = W_ck [p in R], alpha_k = W_ck |R| / (HW) and the map is
    ReLU(|R| / (HW) * sum_k W_ck A_k)."""
    torch.manual_seed(2)
    channels, classes, height, width = 3, 4, 5, 6
    head = nn.Conv2d(channels, classes, 1, bias=False).double()
    conv = nn.Conv2d(channels, channels, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
    model = nn.Sequential(conv, head).eval()
    x = torch.randn(1, channels, height, width, dtype=torch.float64)
    logits = model(x).detach()
    target = int(logits.argmax(dim=1).flatten().mode().values)  # a class predicted on some pixels
    region = (logits.argmax(dim=1) == target).double()
    acts, (grads,), _ = saliency.layer_gradients(model, model[0], x, [saliency.segmentation_score(target)])
    weights = head.weight.detach()[target, :, 0, 0] * region.sum() / (height * width)
    torch.testing.assert_close(saliency.gradcam(acts, grads), torch.relu(torch.einsum("k,khw->hw", weights, x[0]))[None],
                               rtol=1e-12, atol=1e-15)
    score = saliency.segmentation_score(target)(logits)
    torch.testing.assert_close(score, (logits[:, target] * region).sum(dim=(1, 2)), rtol=0, atol=0)
    # A class predicted nowhere scores over every pixel.
    two_pixels = torch.tensor([[[[3.0, 0.0]], [[1.0, 2.0]], [[0.0, 0.0]]]])  # [1, K=3, 1, 2]: classes 0 and 1 win
    assert saliency.predicted_region(two_pixels, 1).tolist() == [[[0.0, 1.0]]]
    assert saliency.predicted_region(two_pixels, 2).tolist() == [[[1.0, 1.0]]]
    assert saliency.segmentation_score(2)(two_pixels).tolist() == [0.0]
    assert saliency.segmentation_score(0)(two_pixels).tolist() == [3.0]
    result = explain_images(model, x, task="segment", targets=[[target]], layer="0")
    assert result.layer == "0" and result.explanations[0].heatmap.shape == (height, width)


def test_integrated_gradients_is_exact_for_a_linear_model() -> None:
    """f(x) = w . x + b: the gradient is w on the whole path, so the attributions are (x - x0) * w and
    sum to f(x) - f(x0) up to rounding, whatever the number of steps."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double().eval()
    x = torch.randn(2, 4, 4, dtype=torch.float64)
    baseline = saliency.baseline_like(x, "black", (0.5, 0.25), (0.2, 0.4))
    torch.testing.assert_close(baseline[:, 0, 0], torch.tensor([-2.5, -0.625], dtype=torch.float64))
    for steps in (1, 7):
        attributions = saliency.integrated_gradients(model, x, baseline, saliency.classification_score([2]), steps=steps)
        weight = model[1].weight.detach()[2].view(2, 4, 4)
        torch.testing.assert_close(attributions, (x - baseline) * weight, rtol=1e-12, atol=1e-14)
        with torch.no_grad():
            difference = float(model(x[None])[0, 2] - model(baseline[None])[0, 2])
        assert float(attributions.sum()) == pytest.approx(difference, abs=1e-12)


def test_integrated_gradients_completeness_on_a_smooth_model_improves_with_steps() -> None:
    """A smooth network (tanh): the trapezoidal rule's error in the completeness sum shrinks as
    1/steps², below 1e-3 of the score difference at 64 steps."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5)).double().eval()
    x = torch.randn(3, 6, 6, dtype=torch.float64)
    baseline = saliency.baseline_like(x, "mean", None, None)
    assert torch.equal(baseline, torch.zeros_like(x))
    with torch.no_grad():
        difference = float(model(x[None])[0, 4] - model(baseline[None])[0, 4])
    errors = []
    for steps in (4, 64):
        attributions = saliency.integrated_gradients(model, x, baseline, saliency.classification_score([4]), steps=steps)
        errors.append(abs(float(attributions.sum()) - difference))
    assert errors[1] < 1e-3 * abs(difference)
    assert errors[1] < errors[0] / 20


def test_trapezoid_weights_and_map_helpers() -> None:
    alphas, weights = saliency.trapezoid_weights(4, dtype=torch.float64)
    assert alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and weights.tolist() == [0.125, 0.25, 0.25, 0.25, 0.125]
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        saliency.trapezoid_weights(0)
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[-1.0, 0.0], [0.0, 0.0]]])
    assert saliency.normalize_maps(maps).tolist() == [[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
    assert saliency.upsample(maps, (4, 4)).shape == (2, 4, 4)
    attributions = torch.tensor([[[1.0]], [[-3.0]]])  # [C=2, 1, 1]: channel sum -2, no positive evidence
    assert saliency.attribution_map(attributions).tolist() == [[0.0]]
    with pytest.raises(ValueError, match="baseline must be one of"):
        saliency.baseline_like(attributions, "white", None, None)
