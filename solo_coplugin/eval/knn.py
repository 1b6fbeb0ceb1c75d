"""Weighted k-NN top-1, as solo-learn's ``WeightedKNNClassifier`` computes it (pure torch).

solo-learn's online and offline k-NN (Wu et al., 2018, https://arxiv.org/abs/1805.01978): cosine
similarity between L2-normalized features, the k most similar training images vote for their
class with weight ``exp(similarity / T)``. solo-learn's online k-NN uses k = 20, T = 0.07.
"""

import torch
import torch.nn.functional as F

SOLO_KNN_K = 20
SOLO_KNN_T = 0.07


@torch.no_grad()
def knn_top1(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = SOLO_KNN_K,
    temperature: float = SOLO_KNN_T,
    chunk_size: int = 1024,
) -> float:
    """Weighted k-NN top-1 accuracy in percent.

    Args:
        train_features (torch.Tensor): ``N x D`` training features (the memory bank).
        train_labels (torch.Tensor): ``N`` labels.
        test_features (torch.Tensor): ``M x D`` test features.
        test_labels (torch.Tensor): ``M`` labels.
        k (int): neighbours. Defaults to 20.
        temperature (float): the temperature of the vote weights. Defaults to 0.07.
        chunk_size (int): test images per similarity block.

    Returns:
        float: top-1 accuracy (%).
    """

    train_features = F.normalize(train_features.float(), dim=1)
    test_features = F.normalize(test_features.float(), dim=1)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train_features.shape[0])
    correct = 0
    for start in range(0, test_features.shape[0], chunk_size):
        similarity = test_features[start : start + chunk_size] @ train_features.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        votes = F.one_hot(train_labels[top_index], num_classes).float()
        scores = (votes * (top_similarity / temperature).exp().unsqueeze(-1)).sum(1)
        correct += (scores.argmax(1) == test_labels[start : start + chunk_size]).sum().item()
    return 100.0 * correct / test_features.shape[0]
