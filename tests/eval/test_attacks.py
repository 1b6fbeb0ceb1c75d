import torch
import torch.nn as nn

from solo_coplugin.eval.attacks import pgd, robust_accuracy


def linear_classifier_and_data(n=64):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    images = torch.rand(n, 3, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(1)  # clean accuracy 100% by construction
    labels[: n // 4] = (labels[: n // 4] + 1) % 3  # and 75% after flipping a quarter
    return model, images, labels


def test_eps_zero_is_the_clean_accuracy_and_larger_eps_never_helps():
    model, images, labels = linear_classifier_and_data()
    accuracy = robust_accuracy(model, images, labels, epsilons=(0.5 / 255, 4 / 255, 32 / 255))
    assert accuracy[0.0] == 75.0
    values = [accuracy[eps] for eps in sorted(accuracy)]
    assert all(b <= a for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0]  # a large radius does flip a linear classifier


def test_adversarial_images_stay_in_the_ball_and_in_pixel_range():
    model, images, labels = linear_classifier_and_data(8)
    eps = 8 / 255
    adversarial = pgd(model, images, labels, eps, generator=torch.Generator().manual_seed(0))
    assert (adversarial - images).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.equal(pgd(model, images, labels, 0.0), images)
    loss = nn.functional.cross_entropy
    assert loss(model(adversarial), labels) > loss(model(images), labels)
