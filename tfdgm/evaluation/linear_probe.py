"""Linear probe: how linearly separable the classes are in a representation.

The representation-learning yardstick of BiGAN (Donahue et al. 2017, Section 4) and of most
self-supervised work: fit a multinomial logistic regression on the features of a labelled
training split and report its accuracy on the test split. Comparing a model's codes (an encoder's
`E(x)`, a VAE's posterior means: the contract's `embeddings`) with the raw pixels on one protocol
says whether unsupervised training made the classes easier to separate.

The fit is deterministic and has one minimum: features are standardized with the training
split's mean and standard deviation, and the L2-regularized mean cross-entropy

```none
L(W, b) = -(1/N) sum_n log softmax(W^T f_n + b)_{y_n} + (l2 / 2) ||W||_F^2
```

is minimized by L-BFGS (float64; `b` is not penalized). With `l2 > 0` the problem is strictly
convex in `W`, so the accuracy is a function of the data alone.

#### References

[1]: Jeff Donahue, Philipp Kraehenbuehl and Trevor Darrell. Adversarial Feature Learning. In
     _International Conference on Learning Representations_, 2017.
     https://arxiv.org/abs/1605.09782
"""

from typing import Dict

import numpy as np
from scipy import optimize, special


def _standardize(train, test):
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-8, std, 1.0)  # constant features (e.g. always-black pixels)
    return (train - mean) / std, (test - mean) / std


def fit_softmax_regression(features: np.ndarray, labels: np.ndarray, num_classes: int,
                           l2: float = 1e-3, max_iterations: int = 1000):
    """`(W [F, K], b [K], result)` minimizing the module's `L(W, b)` on `features [N, F]` and
    integer `labels [N]`; `result` is SciPy's `OptimizeResult`."""
    x = np.asarray(features, np.float64)
    n, f = x.shape
    onehot = np.eye(num_classes)[np.asarray(labels)]

    def loss_and_gradient(theta):
        w, b = theta[:f * num_classes].reshape(f, num_classes), theta[f * num_classes:]
        logits = x @ w + b
        log_p = logits - special.logsumexp(logits, axis=1, keepdims=True)
        loss = -np.sum(onehot * log_p) / n + 0.5 * l2 * np.sum(w * w)
        residual = (np.exp(log_p) - onehot) / n
        gradient = np.concatenate([(x.T @ residual + l2 * w).ravel(), residual.sum(0)])
        return loss, gradient

    theta = np.zeros(f * num_classes + num_classes)
    result = optimize.minimize(loss_and_gradient, theta, jac=True, method="L-BFGS-B",
                               options={"maxiter": max_iterations})
    w = result.x[:f * num_classes].reshape(f, num_classes)
    return w, result.x[f * num_classes:], result


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray,
                 test_features: np.ndarray, test_labels: np.ndarray,
                 l2: float = 1e-3, max_iterations: int = 1000) -> Dict[str, float]:
    """Test accuracy of a linear classifier fitted on the training features.

    ```python
    probe = linear_probe(model.embeddings(x_train)["encoder"], y_train,
                         model.embeddings(x_test)["encoder"], y_test)
    probe["accuracy"]      # fraction of test examples classified correctly
    ```

    Args:
      train_features: `[N, ...]` features of the labelled training examples (flattened).
      train_labels: `[N]` integer classes `0 .. K - 1`.
      test_features: `[M, ...]` features of the test examples, the same map as the training ones.
      test_labels: `[M]` integer classes.
      l2: the weight of `(1/2) ||W||_F^2` in the objective `L` (on standardized features).
      max_iterations: L-BFGS iterations.

    Returns:
      `{"accuracy", "train_accuracy", "converged", "iterations"}`.
    """
    train = np.asarray(train_features, np.float64).reshape(len(train_features), -1)
    test = np.asarray(test_features, np.float64).reshape(len(test_features), -1)
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test features differ in width: {train.shape[1]} vs "
                         f"{test.shape[1]}")
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    train, test = _standardize(train, test)
    w, b, result = fit_softmax_regression(train, train_labels, num_classes, l2, max_iterations)
    return {
        "accuracy": float(np.mean(np.argmax(test @ w + b, 1) == test_labels)),
        "train_accuracy": float(np.mean(np.argmax(train @ w + b, 1) == train_labels)),
        "converged": bool(result.success),
        "iterations": int(result.nit),
    }
